"""CRC-32 and deflate, picking the fastest implementation installed.

This is where the speed-ups live: ``pip install zipwsgi`` brings zlib-ng and isal on the
platforms that have wheels for them (see ``install_requires`` in setup.cfg); their CRC-32
runs several times faster than the stdlib's and their deflate produces the same format.
Without them, the stdlib ``zlib`` does the job.

Levels: an int 0-9 (or -1, zlib's default, 6) means that zlib level, compressed by
zlib-ng when installed (standard deflate at about zlib's ratio, 1.5-2x faster) or by
zlib. :data:`FAST` (``"fast"``) asks for the fastest compressor that still shrinks
text about 3 times: isal level 3 when installed, else zlib-ng level 2, else zlib level 1.
Every choice writes standard raw deflate that any unzip reads; the exact compressed bytes
depend on the level and on which implementation is installed, but never on the run: a
deflated archive has no length to announce, so a resumed download (an HTTP Range
request) is served by streaming it again, and must get the same bytes.
"""

from __future__ import annotations

import zlib
from types import ModuleType
from typing import Callable, Optional, Protocol, cast

from zipwsgi.formats.entry import Level as Level  # re-exported: callers import it here

_zlib_ng: Optional[ModuleType]
_isal_zlib: Optional[ModuleType]

try:  # zlib-ng: same ratios as zlib at each level, faster
    from zlib_ng import zlib_ng as _zlib_ng
except ImportError:  # pragma: no cover - no wheel for this platform
    _zlib_ng = None

try:  # isal: fastest CRC-32 and a very fast low-level deflate
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - no wheel for this platform
    _isal_zlib = None


def _pick_crc32() -> Callable[[bytes, int], int]:
    """The package's CRC-32, chosen here once: zlib-ng's, then isal's, then zlib's.

    Not isal first, though its CRC is ~10% faster on big buffers (28 against 26 GB/s on
    4 MiB): one isal call of 256 bytes or more returns with the CPU's upper AVX-512
    register state dirty (no ``vzeroupper``), and every SSE instruction the interpreter
    runs afterwards pays for it, for the rest of the process. Measured on the 2-vCPU
    Xeon VM (AVX-512), fresh processes, before and after one call: ``str.encode()`` of
    18 characters 25 -> 160 ns after ``isal_zlib.crc32`` of 256 bytes or more (16 bytes:
    no change), the same after an isal deflate (``compressobj(3)``); zlib-ng's and
    zlib's CRC and deflate leave it at 25 ns. The same CRC values from all three.
    """
    if _zlib_ng is not None:
        return cast(Callable[[bytes, int], int], _zlib_ng.crc32)
    if _isal_zlib is not None:
        return cast(Callable[[bytes, int], int], _isal_zlib.crc32)
    return zlib.crc32


crc32: Callable[..., int] = _pick_crc32()
CRC32_IMPLEMENTATION = getattr(crc32, "__module__", "zlib") or "zlib"

DEFAULT_LEVEL = 6
#: The level name that trades some ratio for several times the speed (see the module doc).
FAST = "fast"

# The level each implementation runs for FAST: the fastest that still shrinks text about
# three times AND gives the same bytes every run. Not isal 1 or 2: their output is not
# reproducible (the same input compressed twice in one process sometimes differs: valid
# deflate, different bytes), and a resumed download must get the bytes it started with;
# tests/test_deflate.py keeps checking level 3. Not zlib-ng 1: a cruder strategy with a
# much worse ratio. Speeds and ratios per choice: README, Performance.
_FAST_ISAL_LEVEL = 3
_FAST_ZLIB_NG_LEVEL = 2
_FAST_ZLIB_LEVEL = 1

_RAW = -15  # raw deflate, 32 KiB window: what zip entries hold (no zlib header)
_MEM_LEVEL = 8  # zlib's default, spelled out because zdict comes after it positionally


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self, mode: int = ...) -> bytes: ...


#: Makes a fresh raw-deflate compressor, optionally primed with a preset dictionary.
CompressorFactory = Callable[[Optional[bytes]], Compressor]


def check_level(level: Level) -> Level:
    """Return ``level`` if it names a deflate level, else raise ``ValueError``."""
    if level is None or level == FAST:
        return level
    if isinstance(level, int) and not isinstance(level, bool) and -1 <= level <= 9:
        return level
    raise ValueError(f"deflate level must be an int 0-9, -1, None or {FAST!r}, not {level!r}")


def _choose(level: Level) -> tuple[object, int]:
    """The module and numeric level that compress at ``level`` (looked up at call time, so
    tests can hide the optional libraries by setting ``_zlib_ng``/``_isal_zlib`` to None)."""
    level = check_level(level)
    if level == FAST:
        if _isal_zlib is not None:
            return _isal_zlib, _FAST_ISAL_LEVEL
        if _zlib_ng is not None:
            return _zlib_ng, _FAST_ZLIB_NG_LEVEL
        return zlib, _FAST_ZLIB_LEVEL
    number = DEFAULT_LEVEL if level is None or level == -1 else level
    return (_zlib_ng if _zlib_ng is not None else zlib), number  # type: ignore[return-value]


def deflater(level: Level) -> CompressorFactory:
    """A factory of raw-deflate compressors for ``level``; pass it a preset dictionary
    (``zdict``, up to 32 KiB of the data just before) or None."""
    module, number = _choose(level)
    compressobj = module.compressobj  # type: ignore[attr-defined]

    def new(zdict: Optional[bytes] = None) -> Compressor:
        if zdict:
            return cast(Compressor, compressobj(number, zlib.DEFLATED, _RAW, _MEM_LEVEL, 0, zdict))
        return cast(Compressor, compressobj(number, zlib.DEFLATED, _RAW))

    return new


def raw_deflater(level: Level, zdict: Optional[bytes] = None) -> Compressor:
    """A raw-deflate compressor (no zlib header) as zip entries need.

    zlib-ng is used when present: it emits standard deflate at zlib's ratios, faster.
    """
    return deflater(level)(zdict)


def deflate_implementation(level: Level) -> str:
    """Which library and level compress at ``level`` here, e.g. ``"isal level 3"``."""
    module, number = _choose(level)
    name = {id(_isal_zlib): "isal", id(_zlib_ng): "zlib-ng"}.get(id(module), "zlib")
    return f"{name} level {number}"
