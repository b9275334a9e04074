"""The ``kuradb`` command: a thin shell over the library.

``main.py`` parses the arguments and prints errors, ``commands.py`` runs each
command, ``io.py`` reads what they take and writes what they print: JSON when
stdout is not a terminal (or with --json), a readable view otherwise.
"""
from __future__ import annotations

from .main import main, parser

__all__ = ["main", "parser"]
