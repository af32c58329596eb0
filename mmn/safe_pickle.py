"""Read skeleton-data pickles (the MMN authors' release, pyskl) without running pickled code.

Data pickles hold dicts, lists, strings, numbers and numpy arrays. :func:`load_data_pickle`
uses an unpickler that resolves only the handful of numpy and container globals those need
and refuses everything else, so a malicious file raises instead of executing.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"), ("builtins", "slice"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "complex"),
}


class UnsafePickleError(pickle.UnpicklingError):
    pass


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module == "numpy" and name.endswith("DType")) or \
                module == "numpy.dtypes":
            return super().find_class(module, name)
        raise UnsafePickleError(f"refusing to load global {module}.{name} (data pickles hold only "
                                f"arrays and containers)")


def load_data_pickle(path: str | os.PathLike) -> Any:
    """Unpickle a data file safely. Raises ``ValueError`` naming the file on any problem."""
    try:
        with open(path, "rb") as f:
            return _DataUnpickler(io.BufferedReader(f)).load()
    except UnsafePickleError as e:
        raise ValueError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as e:
        raise ValueError(f"{path}: not a readable data pickle ({type(e).__name__}: {e})") from None
