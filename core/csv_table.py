"""CSV text for every table the project writes: one dialect, one line ending, safe cells.

Every CSV goes through :func:`csv_text`: comma-separated, ``\\n`` line ends, quoted only where
needed. A text cell that a spreadsheet would evaluate as a formula (it starts with ``=``,
``+``, ``-``, ``@``, a tab, CR or LF, and is not a plain number) gets a leading ``'``, so
``=HYPERLINK(...)`` in a class name, a code or a video's file name is shown as text, not run
(the OWASP rule for CSV injection). Numbers, negative ones included, are written as they are.
:func:`plain_cell` undoes the prefix when the project reads its own tables back.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["FORMULA_PREFIXES", "csv_text", "plain_cell", "safe_cell"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """``value`` as a cell no spreadsheet evaluates: text starting with a formula character
    (and not a number) gets a leading ``'``; anything that is not text is returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def plain_cell(text: str) -> str:
    """The text :func:`safe_cell` was given, from a cell it wrote (``'=x`` → ``=x``)."""
    if text.startswith("'") and text[1:].startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(text[1:]):
        return text[1:]
    return text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A header and rows as CSV text, every cell through :func:`safe_cell`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([safe_cell(h) for h in header])
    writer.writerows([safe_cell(v) for v in row] for row in rows)
    return buf.getvalue()
