"""Unpickling the authors' data release without running code from it.

A pickle can call any importable function while it loads (``os.system`` included). The release's split files
only hold lists of dicts of strings and numpy arrays, so :class:`RestrictedUnpickler` admits exactly the
globals that numpy arrays, numpy scalars and the builtin containers need, and refuses everything else *before*
it is called, naming the file and the refused class.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

from c2kd.errors import DataError

#: (module, name) pairs a split file may reference. numpy 2 moved ``numpy.core`` to ``numpy._core``; pickles
#: written by numpy 1.x name the old module, so both spellings are listed (resolved to the installed one).
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [(mod, "_reconstruct") for mod in ("numpy.core.multiarray", "numpy._core.multiarray")]
    + [(mod, "scalar") for mod in ("numpy.core.multiarray", "numpy._core.multiarray")]
    + [(mod, "_frombuffer") for mod in ("numpy.core.numeric", "numpy._core.numeric")]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
    # protocol-2 pickles store array bytes as latin-1 text and call codecs.encode to get them back
    + [("_codecs", "encode")]
    + [
        ("builtins", name)
        for name in (
            "dict",
            "list",
            "tuple",
            "set",
            "frozenset",
            "str",
            "bytes",
            "bytearray",
            "int",
            "float",
            "complex",
            "bool",
        )
    ]
    + [("collections", "OrderedDict")]
)

#: Python 2 module names, as found in protocol 0-2 pickles.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class UnsafePickleError(DataError):
    """A pickle referenced a global outside :data:`ALLOWED_GLOBALS` (it was not called)."""


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` whose ``find_class`` only admits :data:`ALLOWED_GLOBALS`.

    Example:
        >>> import numpy as np
        >>> data = pickle.dumps([{"id": "v1", "2d": np.zeros((2, 3), np.float32)}])
        >>> RestrictedUnpickler(io.BytesIO(data), source="example.pkl").load()[0]["2d"].shape
        (2, 3)
    """

    def __init__(self, file: io.BufferedIOBase, source: str = "<pickle>"):
        # latin1: numpy arrays written by Python 2 store their bytes as 8-bit strings
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self.source}: refusing to load the global {module}.{name} from this pickle. A "
                "feature file "
                "of the C2KD release only needs numpy arrays and builtin containers; this file may run code "
                "when loaded. Do not load it with plain pickle; get the file again from a source you trust."
            )
        return _resolve(module, name)


def _resolve(module: str, name: str) -> Any:
    for candidate in (
        module,
        module.replace("numpy.core", "numpy._core"),
        module.replace("numpy._core", "numpy.core"),
    ):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise UnsafePickleError(f"cannot resolve {module}.{name} with the installed numpy")  # pragma: no cover


def load_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle file with :class:`RestrictedUnpickler`.

    Raises :class:`UnsafePickleError` for a disallowed global and :class:`DataError` for a corrupt file, both
    naming ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} not found; give SPLIT=FILE with the path of one of the release's .pkl files")
    with open(path, "rb") as fh:
        try:
            return RestrictedUnpickler(fh, source=str(path)).load()
        except UnsafePickleError:
            raise
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            TypeError,
            AttributeError,
            ImportError,
            IndexError,
            KeyError,
        ) as exc:
            raise DataError(
                f"{path} is not a readable pickle ({type(exc).__name__}: {exc}); "
                "download it again or check that it is a split file of the release"
            ) from exc
