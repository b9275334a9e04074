"""A progress line on stderr for long CLI work, shown only when stderr is a terminal."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """``with Progress("importing", total=None) as p: p.advance(n)``; silent when not a TTY.

    Two kinds of work: counted (``advance(n)``: items, with a rate, and out of
    ``total`` when it is known) and measured by a share (``fraction(f)``: the
    callbacks of library calls such as verify or backup, shown as a percentage).
    The last line, drawn when the block ends, shows the final count, or 100%
    when the block ended without an error.
    """

    def __init__(self, label: str, *, total: int | None = None, stream: TextIO | None = None,
                 min_interval: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.done = label, total, 0
        self.share: float | None = None     # set by fraction(): the work is measured by a share
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.min_interval = min_interval
        self._clock = clock                 # seconds, for the rate and the redraw interval
        self._started = clock()
        self._last = float("-inf")
        self._width = 0     # of the line on screen: a shorter one must blank what is left of it

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None and self.share is not None:
            self.share = 1.0
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def fraction(self, done: float) -> None:
        """Move to ``done`` (0.0-1.0) of the work: for library calls that report ``progress(fraction)``."""
        self.share = min(max(float(done), 0.0), 1.0)
        if self.enabled:
            self._draw()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            self._draw()

    def line(self, now: float | None = None) -> str:
        """The progress line as it is now."""
        elapsed = max((self._clock() if now is None else now) - self._started, 1e-9)
        if self.share is not None:
            return f"{self.label} {_bar(self.share)} {self.share:.0%} {elapsed:.1f}s"
        rate = f"{self.done / elapsed:,.0f}/s"
        if self.total:
            return f"{self.label} {_bar(self.done / self.total)} {self.done:,}/{self.total:,} {rate}"
        return f"{self.label} {self.done:,} {rate}"

    def _draw(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        text = self.line(now)
        self.stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        self.stream.flush()


def _bar(share: float, width: int = 30) -> str:
    filled = int(width * min(max(share, 0.0), 1.0))
    return f"[{'#' * filled}{'.' * (width - filled)}]"
