"""One escape function per output format, for anything from data (job names, messages, parameters) the toolkit
writes into Markdown, CSV or a shell line a person may paste.

- Markdown: HTML escaped (`<img onerror=...>` stays text in every renderer), one line, `|` escaped in table cells.
- CSV: a cell that a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading `'`
  (OWASP "CSV injection"); the csv module does the quoting.
- Shell: every word quoted with `shlex.quote`, so a pasted line runs exactly the command shown.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from html import escape

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def markdown_text(value: object) -> str:
    """Text as inert Markdown: HTML escaped, on one line."""
    text = "" if value is None else str(value)
    return " ".join(escape(text, quote=False).splitlines())


def markdown_cell(value: object) -> str:
    """Text as the inert content of one Markdown table cell."""
    return markdown_text(value).replace("|", "\\|")


def csv_cell(value: object) -> object:
    """A value as a CSV cell no spreadsheet evaluates: text starting like a formula gets a leading `'`.

    Numbers stay numbers (a negative number is data, not a formula).
    """
    if isinstance(value, bool) or not isinstance(value, str):
        return value
    return "'" + value if value.startswith(_FORMULA_START) else value


def shell_line(words: Iterable[str]) -> str:
    """A command line whose words reach the program exactly as given, whatever they hold."""
    return shlex.join(words)


def shell_word(word: str) -> str:
    """One word of a shell line, quoted where needed."""
    return shlex.quote(word)
