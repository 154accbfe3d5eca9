"""CRC-32 and deflate, picking the fastest implementation installed.

This is where the optional speed-ups live: ``pip install zipwsgi[fast]`` brings zlib-ng
and isal, whose CRC-32 runs several times faster than the stdlib's and whose deflate
produces the same format. Without them, the stdlib ``zlib`` does the job.
"""

from __future__ import annotations

import zlib
from typing import Callable, Optional, Protocol

try:  # zlib-ng: same ratios as zlib at each level, faster
    from zlib_ng import zlib_ng as _zlib_ng
except ImportError:  # pragma: no cover - depends on the optional extra
    _zlib_ng = None

try:  # isal: fastest CRC-32 and a very fast low-level deflate
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - depends on the optional extra
    _isal_zlib = None


def _pick_crc32() -> Callable[[bytes, int], int]:
    if _isal_zlib is not None:
        return _isal_zlib.crc32
    if _zlib_ng is not None:
        return _zlib_ng.crc32
    return zlib.crc32


crc32: Callable[..., int] = _pick_crc32()
CRC32_IMPLEMENTATION = getattr(crc32, "__module__", "zlib") or "zlib"

DEFAULT_LEVEL = 6


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self, mode: int = ...) -> bytes: ...


def raw_deflater(level: Optional[int]) -> Compressor:
    """A raw-deflate compressor (no zlib header) as zip entries need.

    zlib-ng is used when present: it emits standard deflate at zlib's ratios, faster.
    """
    level = DEFAULT_LEVEL if level is None else level
    module = _zlib_ng if _zlib_ng is not None else zlib
    return module.compressobj(level, zlib.DEFLATED, -15)


def deflate_bound(size: int) -> int:
    """An upper bound of deflate's output for ``size`` input bytes (zlib's own formula)."""
    return size + (size >> 12) + (size >> 14) + (size >> 25) + 13 + 64
