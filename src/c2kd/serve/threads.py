"""One BLAS thread per request thread in the server: numpy's OpenBLAS pool is not made for concurrent callers.

The server answers each request in a thread of its pool; the exact index scores a query with one numpy matrix
product. With OpenBLAS's default (a pool of as many threads as cores, spinning while they wait for work), 50
concurrent searches made the 2-core test machine spend about 120 ms of CPU per request instead of 3 ms
(``bench/bench_serve.py``: 8 requests/s instead of 280). Requests already run in parallel, so each product
gets one thread. Set through the library's own call (the libraries numpy loaded, found in /proc/self/maps), as
``OPENBLAS_NUM_THREADS`` only works before numpy is imported.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

#: the setter's name in the OpenBLAS builds numpy and scipy ship, and in a system OpenBLAS
SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
           "openblas_set_num_threads")


def limit_blas_threads(threads: int = 1) -> int:
    """Give every OpenBLAS loaded in this process ``threads`` threads; returns how many libraries were set
    (0 where there is none, e.g. a numpy built on another BLAS, or no /proc)."""
    import numpy  # noqa: F401 - loads the BLAS to set

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return 0
    done = 0
    for path in sorted(set(re.findall(r"(/\S*openblas\S*\.so[\w.]*)", maps))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter.argtypes = [ctypes.c_int]
                setter(int(threads))
                done += 1
                break
    return done


#: glibc's mallopt parameter for the number of malloc arenas
M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Let glibc's malloc keep at most ``arenas`` arenas (default: 8 per core, one per busy thread): the server's
    request threads would otherwise each grow an arena of their own, which stays resident. True when set (glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))
