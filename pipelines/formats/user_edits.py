"""Annotation files a coder edited are never lost: a rerun merges, it does not overwrite.

The job writes annotation files that coders open and correct in place: ``KEY.eaf`` (ELAN),
``KEY.events.csv`` and the run's BORIS project. Beside each it keeps the exact text it wrote,
in ``OUT/.machine/NAME`` (the *machine copy*). On a rerun, a file whose bytes differ from its
machine copy (or that has none: written by a person, or by an older version) was edited, and
a three-way merge replaces only what is still the machine's:

- *base*: the machine copy, what the job wrote last time;
- *user*: the file as it is now;
- *new*: what the job would write now.

An item (an ELAN tier, a table row, a BORIS event) that is in *user* but not in *base* was made
or edited by a person: it is kept, unchanged. An item of *base* that is still in *user* is the
machine's and is replaced by *new*. An item of *base* the person deleted stays deleted. Where a
kept ELAN tier has the name of a machine tier, the refreshed machine tier is written beside it
as ``NAME (machine)``. The merged file is written atomically in place, and the machine copy
becomes *new*, so the next rerun recognises the machine's part again.

Removing outputs (a failed rerun, ``--overwrite``, leftovers) goes through
:func:`removable`: a file a person edited is never removed.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.atomic import atomic_write_text
from core.csv_table import csv_text, plain_cell
from pipelines.formats.spans import AnnotationError

__all__ = ["MACHINE_DIR", "EditReport", "edited_by_user", "forget", "machine_copy", "merge_csv_rows", "removable",
           "write_keeping_edits"]

MACHINE_DIR = ".machine"

Merge = Callable[[Path, "str | None", str], "tuple[str, EditReport]"]


@dataclass(frozen=True)
class EditReport:
    """What a merge kept: ``kept`` items a person made or edited, ``beside`` machine items
    written under another name next to a kept one, ``deleted`` machine items a person removed
    (left out again)."""

    path: Path
    kept: tuple[str, ...] = ()
    beside: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"kept {len(self.kept)} edited item(s) ({_few(self.kept)})"]
        if self.beside:
            parts.append(f"refreshed machine items beside them as {_few(self.beside)}")
        if self.deleted:
            parts.append(f"left out {len(self.deleted)} item(s) a person deleted")
        return f"{self.path.name} was edited since the job wrote it: " + "; ".join(parts)


def _few(items: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(repr(i) for i in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def machine_copy(path: str | os.PathLike) -> Path:
    """Where the job keeps the text it last wrote to ``path``."""
    path = Path(path)
    return path.parent / MACHINE_DIR / path.name


def edited_by_user(path: str | os.PathLike) -> bool:
    """Whether ``path`` exists and differs from what the job last wrote there (a file without a
    machine copy counts as a person's)."""
    path = Path(path)
    if not path.is_file():
        return False
    base = machine_copy(path)
    try:
        return not base.is_file() or base.read_bytes() != path.read_bytes()
    except OSError:
        return True  # unreadable: never assume it is ours


def removable(paths: Sequence[Path]) -> list[Path]:
    """The ``paths`` that may be removed: those no person edited."""
    return [p for p in paths if not edited_by_user(p)]


def write_keeping_edits(path: str | os.PathLike, new_text: str, merge: Merge) -> EditReport | None:
    """Write ``new_text`` to ``path`` atomically, unless a person edited the file: then write
    ``merge(path, base_text, new_text)`` (base: the machine copy, None without one) and return
    its report. The machine copy becomes ``new_text`` either way."""
    path, copy = Path(path), machine_copy(path)
    # checked first: a person's edits are merged only where the job can keep its copy
    if copy.parent.exists() and not copy.parent.is_dir():
        raise _copy_place_error(copy.parent, "folder")
    if copy.is_dir():
        raise _copy_place_error(copy, "file")
    report = None
    text = new_text
    if edited_by_user(path):
        base_text = copy.read_text(encoding="utf-8") if copy.is_file() else None
        text, report = merge(path, base_text, new_text)
    copy.parent.mkdir(exist_ok=True)
    atomic_write_text(path, text)
    atomic_write_text(copy, new_text)
    return report


def _copy_place_error(where: Path, kind: str) -> AnnotationError:
    return AnnotationError(f"{where}: not a {kind}; the job keeps there what it wrote, to tell a person's edits "
                           f"from its own: move it away")


def forget(path: str | os.PathLike) -> None:
    """Remove the machine copy of ``path`` (its file was removed), and the folder of copies
    once it is empty."""
    copy = machine_copy(path)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # none, or OUT/.machine is no folder
        copy.unlink()
    with contextlib.suppress(OSError):  # not empty, or already gone
        copy.parent.rmdir()


# --------------------------------------------------------------------------- tables


def _normalised(cell: str) -> str:
    cell = plain_cell(cell.strip())
    try:
        return repr(round(float(cell), 4))
    except ValueError:
        return cell


def _rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    return header, [dict(zip(header, row)) for row in reader if any(c.strip() for c in row)]


def merge_csv_rows(path: Path, base_text: str | None, new_text: str) -> tuple[str, EditReport]:
    """Three-way merge of a CSV table by rows (module doc). Values are compared as a
    spreadsheet re-saves them (numbers to 4 decimals, the formula guard undone). Columns a
    person added are kept, empty in the machine's rows. Rows are ordered by the first column
    that parses as a time (``start_s``), machine and person rows together."""
    header, new_rows = _rows(new_text)
    user_header, user_rows = _rows(path.read_text(encoding="utf-8-sig"))
    base_rows = _rows(base_text)[1] if base_text is not None else []
    key = [c for c in header if c in user_header] or header
    if user_header and not set(header) & set(user_header):  # merging would stuff each row into one cell
        raise AnnotationError(f"{path}:1: none of the table's columns ({','.join(header[:4])},…) is in its header "
                              f"{user_header[0][:60]!r}: saved with another separator (';')? Save it as "
                              f"comma-separated CSV")

    def ident(row: dict[str, str]) -> tuple[str, ...]:
        return tuple(_normalised(row.get(c, "")) for c in key)

    base_ids = {ident(r) for r in base_rows}
    user_ids = {ident(r) for r in user_rows}
    kept = [r for r in user_rows if ident(r) not in base_ids]
    deleted_ids = base_ids - user_ids
    kept_ids = {ident(k) for k in kept}
    fresh = [r for r in new_rows if ident(r) not in deleted_ids and ident(r) not in kept_ids]
    left_out = sorted({ident(r) for r in new_rows} & deleted_ids)
    columns = header + [c for c in user_header if c not in header]
    order_col = "start_s" if "start_s" in columns else columns[0]

    def when(row: dict[str, str]) -> tuple[float, str]:
        try:
            return float(plain_cell(row.get(order_col, ""))), ""
        except ValueError:
            return float("inf"), row.get(order_col, "")

    merged = sorted(kept + fresh, key=when)
    text = csv_text(columns, [[plain_cell(r.get(c, "")) for c in columns] for r in merged])
    shown = tuple(" ".join(r.get(c, "") for c in key[:4]) for r in kept)
    report = EditReport(path, kept=shown, deleted=tuple(" ".join(i[:4]) for i in left_out))
    return text, report
