"""The options every archive stream takes, and the one place each is checked.

A typo in an option fails where it is given (a constructor, a middleware at start-up),
never on the first request; the middleware, the app, the CLI and the streams all call
these checks rather than restating them.
"""

from __future__ import annotations

from typing import Union

from zipwsgi.engine.compression import check_level
from zipwsgi.formats.entry import DEFLATE, STORED

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MTIME",
    "VALIDATORS",
    "VERIFY_SIZES",
    "ZIP_DEFLATED",
    "ZIP_STORED",
    "Compression",
    "check_compression",
    "check_level",
    "check_validator",
    "check_verify_sizes",
]

#: Bytes read from a source at a time, and the size the writer batches small records to.
DEFAULT_CHUNK_SIZE = 256 * 1024
#: The mtime of entries that bring none (bytes, iterables): 1980-01-01T00:00:00Z, the
#: zip epoch, so archives never depend on "now" and replicas serve identical bytes.
DEFAULT_MTIME = 315532800
_COMPRESSIONS = (STORED, DEFLATE)
#: zipfile's method numbers (``zipfile.ZIP_STORED``, ``zipfile.ZIP_DEFLATED``), accepted
#: wherever a compression is, so code written for zipfile or zipstream-ng passes them on.
ZIP_STORED = 0
ZIP_DEFLATED = 8
_METHODS = {ZIP_STORED: STORED, ZIP_DEFLATED: DEFLATE}
#: What callers may pass as a compression: our names, or zipfile's integer constants.
Compression = Union[str, int]


VALIDATORS = ("local", "portable")
#: When a manifest's files are checked against the sizes it gives: all before the first
#: byte (``"eager"``), or each when the stream reaches it (``"lazy"``, mod_zip's trade).
VERIFY_SIZES = ("eager", "lazy")


def check_validator(value: str) -> str:
    """``value`` if it names a validator (see :meth:`ArchiveStream.fingerprint`)."""
    if value not in VALIDATORS:
        raise ValueError(f"validator must be one of {VALIDATORS}, not {value!r}")
    return value


def check_verify_sizes(value: str) -> str:
    """``value`` if it says when files are checked (see ``ZipMiddleware``'s
    ``verify_sizes``)."""
    if value not in VERIFY_SIZES:
        raise ValueError(f"verify_sizes must be one of {VERIFY_SIZES}, not {value!r}")
    return value


def check_compression(value: Compression) -> str:
    """The one place a compression is validated: ``"stored"``, ``"deflate"``, or
    zipfile's ``ZIP_STORED`` (0) / ``ZIP_DEFLATED`` (8), which code ported from zipfile,
    python-zipstream or zipstream-ng passes. Other methods (bzip2, lzma) are refused:
    no streaming reader we test handles them."""
    if isinstance(value, int) and not isinstance(value, bool):
        method = _METHODS.get(value)
        if method is None:
            raise ValueError(
                f"compression {value!r} is not supported: use ZIP_STORED (0) or ZIP_DEFLATED (8)"
            )
        return method
    if value not in _COMPRESSIONS:
        raise ValueError(f"compression must be one of {_COMPRESSIONS}, not {value!r}")
    return value
