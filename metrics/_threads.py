"""Keep BLAS single-threaded inside the metrics.

The classifiers here work on small matrices (N x 10 codes). A multithreaded
BLAS gains nothing on them and, on a busy 2-core machine, loses a lot
(explicitness: 4 s single-threaded vs 20 s with 2 BLAS threads under load);
our own parallelism, where there is any, is over independent fits instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from threadpoolctl import threadpool_limits

__all__ = ["single_threaded_blas"]


def single_threaded_blas() -> AbstractContextManager:
    """Context manager limiting BLAS (OpenBLAS, MKL) to one thread."""
    return threadpool_limits(limits=1, user_api="blas")
