"""glibc malloc settings: inference keeps its large buffers instead of re-faulting them.

Each batch of chunks allocates and frees some tens of MB of activations (SincNet's
first layer alone is 80 x 7975 floats per chunk). With glibc's default settings,
freed memory at the top of a heap beyond the trim threshold goes back to the
kernel, and allocations above the (adaptive) mmap threshold get fresh mappings, so
the next batch page-faults the same memory in again: on 10 minutes of audio,
2.6 million minor faults and 6 s of system time out of 25 s of CPU time, on a
2-core machine (docs/performance.md). Raising both thresholds keeps those pages in
the process: the faults drop to a few thousand, the numbers do not change (same
kernels, same order), and the process keeps at most 64 MB of freed memory per
malloc arena.

:func:`tune_malloc` applies the settings once per process, when an
:class:`~skseg.Inference` first runs on the CPU. It does nothing off glibc, when
the environment already sets glibc's malloc parameters (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES`` with ``glibc.malloc``), or when
``SKSEG_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading

__all__ = ["tune_malloc", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Allocations below this come from the heap (glibc's own adaptive maximum).
MMAP_THRESHOLD = 32 * 2**20
#: Freed memory at the top of a heap is kept up to this size.
TRIM_THRESHOLD = 64 * 2**20

# from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_LOCK = threading.Lock()
_applied: bool | None = None  # a forked child inherits both this and the settings


def _user_settings() -> bool:
    env = os.environ
    if "MALLOC_MMAP_THRESHOLD_" in env or "MALLOC_TRIM_THRESHOLD_" in env:
        return True
    return "glibc.malloc." in env.get("GLIBC_TUNABLES", "")


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds, once per process.

    Returns
    -------
    applied : bool
        Whether skseg's settings are in effect: ``False`` off Linux/glibc, when
        the environment sets glibc's malloc parameters itself, or when
        ``SKSEG_MALLOC_TUNING`` is ``0``, ``false``, ``no`` or ``off``.

    Examples
    --------
    >>> applied = tune_malloc()  # True on Linux with glibc
    >>> tune_malloc() == applied  # once per process: later calls change nothing
    True
    """
    global _applied
    with _LOCK:
        if _applied is not None:
            return _applied
        applied = False
        opt_out = os.environ.get("SKSEG_MALLOC_TUNING", "1").strip().lower()
        if (
            sys.platform.startswith("linux")
            and platform.libc_ver()[0] == "glibc"
            and opt_out not in {"0", "false", "no", "off"}
            and not _user_settings()
        ):
            try:
                mallopt = ctypes.CDLL(None).mallopt
            except (OSError, AttributeError):
                mallopt = None
            if mallopt is not None:
                mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                mallopt.restype = ctypes.c_int
                # mallopt returns 1 on success
                applied = bool(
                    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                    and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                )
        _applied = applied
        return applied
