"""Keep a long-running server's memory flat: glibc malloc settings for streaming.

Why: a server that streams archives allocates a few large, short-lived buffers per
download: our chunks (about 256 KiB), and the server's output buffers. waitress, for one,
appends a response to one ``BytesIO`` until 16 MiB have passed through it
(``outbuf_high_watermark``), whatever was already sent. glibc serves such blocks with
``mmap`` at first and returns them on free, but after the first one is freed it raises its
mmap threshold (up to 32 MiB) and from then on serves them from the heap of the thread
that asked, and a freed block in the middle of a heap is never handed back. Each of the
server's threads keeps its own heap (an "arena"), so the process grows by about one such
buffer per worker thread and stays there: measured with ``benchmarks/bench_server_memory.py``
(README, Performance).

:func:`tune_allocator` fixes both thresholds, which switches glibc's dynamic adjustment
off: blocks of ``MMAP_THRESHOLD`` and more always get their own mapping and go back to the
system when freed; smaller ones (our chunks) stay on the heap, whose free top is trimmed
only beyond ``TRIM_THRESHOLD`` (a lower one costs throughput: every chunk would give its
pages back and fault them in again). :class:`~zipwsgi.ZipMiddleware` calls it once per
process. It does nothing where the C library is not glibc, and nothing when the process
was started with ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or
``GLIBC_TUNABLES`` set (the operator chose), or with ``ZIPWSGI_TUNE_MALLOC=0``.
"""

from __future__ import annotations

import os
import sys
import threading

__all__ = ["tune_allocator", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Blocks this large or larger get their own mapping, returned to the system on free.
MMAP_THRESHOLD = 1 << 20
#: Free memory at the top of a heap beyond this goes back to the system.
TRIM_THRESHOLD = 4 << 20

_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3
_OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_lock = threading.Lock()
_result: bool | None = None


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds for streaming, once per process.

    Returns True when the settings are in force (now or from an earlier call), False
    when this process is not on glibc or its operator configured malloc already.
    """
    global _result
    with _lock:
        if _result is None:
            _result = _apply()
        return _result


def _apply() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get("ZIPWSGI_TUNE_MALLOC") == "0":
        return False
    if any(name in os.environ for name in _OPERATOR_SETTINGS):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl has no mallopt knobs)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
