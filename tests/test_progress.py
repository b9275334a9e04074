"""The CLI's progress line: drawn on a terminal, silent otherwise."""
from __future__ import annotations

import io

from kuradb.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_counts_and_a_bar_on_a_terminal():
    out = Terminal()
    with Progress("exporting notes", total=4, stream=out, min_interval=0) as p:
        for _ in range(4):
            p.advance()
    text = out.getvalue()
    assert "\rexporting notes [" in text and "4/4" in text and "/s)" in text
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
    assert out.getvalue() == ""


def test_fraction_moves_to_that_share_of_the_total():
    import io

    from kuradb.progress import Progress

    p = Progress("x", total=1000, stream=io.StringIO())
    p.fraction(0.25)
    p.fraction(0.5)
    assert p.done == 500
    p.fraction(1.0)
    assert p.done == 1000
