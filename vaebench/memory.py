"""Giving freed heap memory back to the operating system; how much memory the machine has.

glibc keeps the memory of freed blocks in its heaps (one per thread arena) for
reuse, so a process that allocates large transients -- a batch of encoder
activations, a metric's sample -- keeps their peak as its resident size, and
each later transient stacks on top of what was retained. ``malloc_trim(0)``
returns the free pages of every arena to the kernel. It changes no value and
costs about a millisecond, so the evaluation calls it between its large steps;
the training loop does not (trimming there, e.g. with ``MALLOC_TRIM_THRESHOLD_=0``,
halved the training speed on the CPU: the next step faults the same pages back in).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

__all__ = ["physical_memory", "release_freed_memory"]


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to call
        return None


def release_freed_memory() -> bool:
    """Return freed heap pages to the OS where the C library can (glibc); True if it was asked."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def physical_memory() -> int | None:
    """The machine's physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
