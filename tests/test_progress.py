"""The CLI's progress line: drawn on a terminal, silent otherwise."""
from __future__ import annotations

import io

from kuradb.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen(text: str) -> list[str]:
    """What a terminal shows for ``text``: '\\r' goes back to the start of the line and overwrites it."""
    lines: list[list[str]] = [[]]
    col = 0
    for ch in text:
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append([])
            col = 0
        else:
            line = lines[-1]
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
    return ["".join(line) for line in lines]


def test_progress_draws_counts_and_a_bar_on_a_terminal():
    out = Terminal()
    with Progress("exporting notes", total=4, stream=out, min_interval=0) as p:
        for _ in range(4):
            p.advance()
    text = out.getvalue()
    assert "\rexporting notes [" in text and "4/4" in text and "/s" in text
    assert text.endswith("\n")


def test_progress_without_total_shows_a_count():
    out = Terminal()
    with Progress("importing", stream=out, min_interval=0) as p:
        p.advance(1500)
    assert "importing 1,500" in out.getvalue()


def test_progress_is_silent_when_not_a_terminal():
    out = io.StringIO()
    with Progress("importing", total=10, stream=out, min_interval=0) as p:
        p.advance(10)
        p.fraction(0.5)
    assert out.getvalue() == ""


def test_the_last_line_shows_the_total_even_between_redraws():
    out = Terminal()
    with Progress("exporting", total=50_000, stream=out, min_interval=3600) as p:
        for _ in range(10):
            p.advance(5_000)  # only the first is drawn: the rest come within min_interval
    assert screen(out.getvalue())[0].startswith("exporting [" + "#" * 30 + "] 50,000/50,000 ")


class Clock:
    """A clock the test moves (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_shorter_line_blanks_what_is_left_of_the_longer_one():
    """The rate shrinks as time passes: the line on screen must be the last one drawn, not a mix."""
    out, clock = Terminal(), Clock()
    with Progress("x", stream=out, min_interval=0, clock=clock) as p:
        clock.now += 1e-6
        p.advance(10**9)   # at once: a thousand billion a second
        clock.now += 1.0
        p.advance(1)       # now a billion a second: the line is shorter
    last_drawn = out.getvalue().rsplit("\r", 1)[1].rstrip("\n")
    visible = screen(out.getvalue())[0]
    assert visible.rstrip() == last_drawn.rstrip()
    assert visible.rstrip().endswith("/s") and visible.count("/s") == 1


def test_the_rate_is_items_per_second_over_the_whole_run():
    out, clock = Terminal(), Clock()
    with Progress("importing", stream=out, min_interval=0, clock=clock) as p:
        clock.now += 0.01
        p.advance(1000)     # drawn at 100,000/s
        clock.now += 0.49
    rate = int(screen(out.getvalue())[0].split()[-1].removesuffix("/s").replace(",", ""))
    assert rate == 2000     # the last line: 1,000 items over the whole 0.5 s


def test_work_measured_by_a_share_shows_a_percentage_and_ends_at_100():
    out = Terminal()
    with Progress("verifying", stream=out, min_interval=0) as p:
        p.fraction(0.25)
        assert "25%" in out.getvalue()
        p.fraction(0.9)    # the library's last callback before it returns
    final = screen(out.getvalue())[0]
    assert "100%" in final and "/s" not in out.getvalue()  # a share has no per-second rate


def test_a_share_is_not_drawn_as_complete_when_the_work_failed():
    out = Terminal()
    try:
        with Progress("verifying", stream=out, min_interval=0) as p:
            p.fraction(0.4)
            raise RuntimeError("stopped")
    except RuntimeError:
        pass
    assert "40%" in screen(out.getvalue())[0] and "100%" not in out.getvalue()
