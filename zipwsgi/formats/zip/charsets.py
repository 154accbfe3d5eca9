"""Zip names in legacy charsets: which charsets can carry names, and how a character the
charset cannot write safely is replaced. Apart from the layout, which only asks."""

from __future__ import annotations

import codecs
import re
from typing import Optional

from zipwsgi.errors import ArchiveNameError
from zipwsgi.formats.zip import records as zf
from zipwsgi.paths import check_encoded_name


def encode_char(ch: str, charset: str) -> str:
    """``ch``, or ``_`` where the charset cannot encode it, or would encode a non-ASCII
    character into bytes that include a path separator, NUL, ``.`` or ``:`` (the
    ``\\u2215`` that ``raw_unicode_escape`` writes for U+2215, the 0x5C second byte of
    some Shift-JIS characters): such a byte would mean something else to an extractor.
    The real name stays in the Unicode Path field."""
    try:
        encoded = ch.encode(charset)
    except UnicodeEncodeError:
        return "_"
    if not ch.isascii() and _MEANINGFUL_BYTES.search(encoded):
        return "_"
    return ch


_MEANINGFUL_BYTES = re.compile(rb"[\\/\x00.:]")
#: The longest UTF-8 name the Unicode Path field (0x7075) can carry: 16-bit lengths for
#: the field and the whole extra area, which also holds the 9-byte field header and
#: version/CRC, the extended timestamp and up to 32 bytes of zip64 field.
MAX_UNICODE_PATH = 0xFFFF - 9 - zf.EXT_TIMESTAMP_SIZE - 32
#: Bytes an ASCII-compatible charset writes unchanged; names rely on ``/`` and ``.``.
_ASCII_PROBE = "azAZ09 ./_-~()[]"


def check_charset(charset: Optional[str]) -> Optional[str]:
    """``charset`` if zip names can be written in it, else ``ValueError`` (at
    construction, not deep inside the first entry).

    It must be a text encoding (``rot13``, ``base64``, ``zlib`` are codecs, not
    charsets) that writes ASCII unchanged (not ``utf-16``, ``utf-32`` or ``punycode``):
    zip readers split names on the byte ``/`` and compare ``.`` and ``..`` as bytes.
    """
    if charset is None or charset == "native":
        return charset
    try:
        info = codecs.lookup(charset)
    except (LookupError, TypeError):
        raise ValueError(f"unknown charset for zip names: {charset!r}") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(f"charset {charset!r} is a codec, not a text encoding")
    try:
        compatible = _ASCII_PROBE.encode(charset) == _ASCII_PROBE.encode("ascii")
    except (UnicodeError, LookupError):
        compatible = False
    if not compatible:
        raise ValueError(f"charset {charset!r} does not write ASCII as ASCII")
    return charset


def encode_name(name: str, charset: Optional[str]) -> tuple[Optional[bytes], int, Optional[bytes]]:
    """(name bytes if not plain UTF-8, flags, Unicode Path extra field or None) of a
    name in ``charset`` (see ZipLayout)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # A file name that is not valid UTF-8 (os.scandir hands it over with
        # surrogate escapes): write its bytes exactly as on disk, without the UTF-8 flag.
        raw = name.encode("utf-8", "surrogateescape")
        return check_encoded_name(raw, name), 0, None
    if charset is None:
        return None, zf.FLAG_UTF8, None
    if charset == "native":
        return None, 0, None
    try:
        legacy = "".join(encode_char(ch, charset) for ch in name).encode(charset)
    except UnicodeError as exc:  # idna refuses empty or over-long labels, for one
        raise ArchiveNameError(
            f"archive name cannot be encoded in {charset}: {name[:80]!r} ({exc})"
        ) from None
    check_encoded_name(legacy, name)
    utf8 = name.encode("utf-8")
    if len(utf8) > MAX_UNICODE_PATH:
        # The field's length is 16 bits, and it shares the extra area (also 16 bits)
        # with the timestamp and a zip64 field: refuse before any byte, not mid-stream.
        raise ArchiveNameError(
            f"archive name too long for zip's Unicode Path field: {name[:80]!r}..."
        )
    return legacy, 0, zf.unicode_path_extra(legacy, utf8)
