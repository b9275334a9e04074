"""A progress line on stderr for long CLI work, shown only when stderr is a terminal."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress("importing", total=None) as p: p.advance(n)``; silent when not a TTY."""

    def __init__(self, label: str, *, total: int | None = None, stream: TextIO | None = None,
                 min_interval: float = 0.1) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.min_interval = min_interval
        self._started = self._last = time.monotonic()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def fraction(self, done: float) -> None:
        """Move to ``done`` (0.0-1.0) of ``total``: for library calls that report ``progress(fraction)``."""
        self.advance(int(done * (self.total or 0)) - self.done)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        rate = self.done / max(now - self._started, 1e-9)
        if self.total:
            width = 30
            filled = int(width * min(self.done / self.total, 1.0))
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {self.done:,}/{self.total:,}"
        else:
            bar = f"{self.done:,}"
        self.stream.write(f"\r{self.label} {bar} ({rate:,.0f}/s)")
        self.stream.flush()
