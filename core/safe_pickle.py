"""Read skeleton-data pickles (the MMN authors' release, pyskl) without running pickled code.

Data pickles hold dicts, lists, strings, numbers and numpy arrays. :func:`load_data_pickle`
uses an unpickler that resolves only an exact allow-list of ``(module, name)`` pairs: the
numpy reconstructors those need, a few harmless containers, and ``_codecs.encode`` (protocols
0–2 store bytes through it). Anything else, a dotted name above all (protocol 4 resolves
``a.b.c`` by attribute walks, which reach ``eval`` from any module), is refused before it is
looked up, so a malicious file raises instead of executing.
"""
from __future__ import annotations

import _compat_pickle
import importlib
import io
import os
import pickle
from typing import Any

__all__ = ["ALLOWED_GLOBALS", "UnsafePickleError", "load_data_pickle", "loads_data_pickle"]

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    # numpy arrays and scalars (numpy 1.x writes numpy.core, numpy 2.x numpy._core)
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    # containers and plain values
    ("collections", "OrderedDict"), ("builtins", "slice"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "bytearray"),
    ("_codecs", "encode"),  # protocols 0-2: bytes objects are pickled as encode(str, 'latin1')
})


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside :data:`ALLOWED_GLOBALS`."""


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """``(module, name)`` with pickle's Python 2 renames applied (protocols 0-2 write
    ``__builtin__.set``); none of the renamed modules exists under its old name."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # exact pairs only: membership is tested on the strings as written (after pickle's
        # Python 2 renames), before any import, and the pair is resolved here by one plain
        # getattr, so "numpy.dtypes" / "__builtins__.__class__.get" never resolves
        pair = _python3_name(module, name)
        if pair in ALLOWED_GLOBALS:
            return getattr(importlib.import_module(pair[0]), pair[1])
        raise UnsafePickleError(f"refusing to load global {module}.{name} (data pickles hold only "
                                f"arrays and containers)")


def _load(stream: io.BufferedIOBase, where: str) -> Any:
    try:
        return _DataUnpickler(stream).load()
    except UnsafePickleError as e:
        raise ValueError(f"{where}: {e}") from None
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as e:  # any malformed stream: truncated, wrong opcodes, bad reconstruct args
        raise ValueError(f"{where}: not a readable data pickle ({type(e).__name__}: {e})") from None


def load_data_pickle(path: str | os.PathLike) -> Any:
    """Unpickle a data file safely. Raises ``ValueError`` naming the file on any problem."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror or e})") from None
    with f:
        return _load(io.BufferedReader(f), str(path))


def loads_data_pickle(data: bytes, where: str = "<bytes>") -> Any:
    """:func:`load_data_pickle` for bytes in memory; ``where`` names them in errors."""
    return _load(io.BytesIO(data), where)
