"""One BLAS thread per request thread in the server: numpy's OpenBLAS pool is not made for concurrent callers.

The server answers each request in a thread of its pool; the exact index scores a query with one numpy matrix
product. With OpenBLAS's default (a pool of as many threads as cores, spinning while they wait for work), 50
concurrent searches made the 2-core test machine spend about 120 ms of CPU per request instead of 3 ms
(``bench/bench_serve.py``: 8 requests/s instead of 280). Requests already run in parallel, so each product
gets one thread. Set through threadpoolctl (OpenBLAS, MKL or BLIS, whichever numpy loaded), as
``OPENBLAS_NUM_THREADS`` only works before numpy is imported.
"""

from __future__ import annotations

import ctypes


def limit_blas_threads(threads: int = 1) -> int:
    """Give every BLAS library loaded in this process ``threads`` threads; returns how many were set."""
    import numpy  # noqa: F401 - loads the BLAS to set
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=int(threads), user_api="blas")
    return sum(1 for library in threadpool_info() if library["user_api"] == "blas")


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
