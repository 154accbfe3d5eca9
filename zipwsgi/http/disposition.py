"""Content-Disposition for downloads: a Unicode file name every browser can read.

RFC 6266 lets a server send the name twice: ``filename="..."`` in plain ASCII for old
clients, and ``filename*=UTF-8''...`` (RFC 8187, formerly RFC 5987) with the real name
percent-encoded. Clients that understand the second form prefer it::

    >>> print(content_disposition("Café 2024.zip"))
    attachment; filename="Cafe 2024.zip"; filename*=UTF-8''Caf%C3%A9%202024.zip

Security note: the name usually comes from user data. The header built here is always a
single line of printable ASCII, so CR/LF cannot inject headers; control characters and
bidirectional overrides (which can make ``evil\\u202egpj.exe`` look like ``evilexe.jpg``)
are dropped, and ``/`` and ``\\`` become ``_`` so a name cannot point into a folder.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from zipwsgi.engine.choice import archive_stem

__all__ = ["archive_filename", "content_disposition", "default_filename"]

# Invisible characters that reorder how a name is displayed (Unicode bidi controls).
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_SEPARATORS = "/\\"
# Controls (C0, DEL, C1 incl. NEL) and U+2028/U+2029, which some software treats as
# line breaks: none belongs in a file name.
_DROPPED_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
# RFC 8187 attr-char beyond what quote() always keeps (ALPHA / DIGIT / "-._~").
_ATTR_CHAR_EXTRA = "!#$&+^`|"
# RFC 7230 token: what a disposition type such as "attachment" or "inline" may be.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Printable ASCII that is safe inside the quoted fallback. RFC 6266 appendix D: some
# user agents do not unescape '\' and some percent-decode '%', so neither is kept, and
# '"' could only be written with a backslash.
_FALLBACK_UNSAFE = '"\\%'


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """Build a ``Content-Disposition`` value that names the download ``filename``.

    The result is one line of printable ASCII. ``filename*`` is added only when the
    ASCII fallback had to change the (cleaned) name, so plain names stay short. Raises
    :class:`ValueError` if ``disposition`` is not an HTTP token or if nothing of
    ``filename`` is left after dropping control characters.
    """
    if not _TOKEN.fullmatch(disposition):
        raise ValueError(f"disposition must be an HTTP token, got {disposition!r}")
    name = _clean(filename)
    if not name:
        raise ValueError(f"file name {filename!r} is empty once control characters are removed")
    fallback = _ascii_fallback(name)
    value = f'{disposition}; filename="{fallback}"'
    if fallback != name:
        encoded = quote(name, safe=_ATTR_CHAR_EXTRA, encoding="utf-8")
        value += f"; filename*=UTF-8''{encoded}"
    return value


def default_filename(path: str) -> str:
    """The last segment of a request path (``/download/photos`` → ``photos``), less an
    archive suffix (``photos.tgz`` → ``photos``): the response adds its own format's,
    so ``/photos.tar`` answered as a tar.gz is not named ``photos.tar.tar.gz``."""
    segment = path.rstrip("/").rsplit("/", 1)[-1]
    stem = archive_stem(segment)
    return (stem if stem.strip(" .") else segment) or "archive"


def archive_filename(name: str, default: str = "archive", *, extension: str = ".zip") -> str:
    """Turn a user-supplied name into a download name: non-empty, no folders, ending in
    the archive's ``extension`` (``.zip``, ``.tar``, ``.tar.gz``).

    Separators become ``_``; surrounding spaces and dots go (Windows drops trailing ones
    anyway, and a leading dot hides the file). An existing suffix equal to ``extension``
    is kept in any case; an empty result falls back to ``default``.
    """
    stem, suffix = _split_suffix(name, extension)
    if not stem:
        stem, suffix = _split_suffix(default, extension)
    return (stem or "archive") + suffix


def _split_suffix(name: str, extension: str) -> tuple[str, str]:
    """Cleaned stem and suffix (the name's own ``extension`` in any case, else it)."""
    name = _clean(name).rstrip(" .")
    suffix = extension
    if extension and name[-len(extension) :].lower() == extension.lower():
        name, suffix = name[: -len(extension)], name[-len(extension) :]
    return name.strip(" ."), suffix


def _clean(name: str) -> str:
    """NFC-normalise, drop control, line-break and bidi characters, separators → ``_``."""
    name = unicodedata.normalize("NFC", name)
    return "".join(
        "_" if char in _SEPARATORS else char
        for char in name
        if unicodedata.category(char) not in _DROPPED_CATEGORIES and char not in _BIDI_CONTROLS
    )


def _ascii_fallback(name: str) -> str:
    """Best-effort ASCII spelling: accents dropped (é → e), anything else becomes ``_``."""
    chars = []
    for char in unicodedata.normalize("NFKD", name):
        if unicodedata.combining(char):
            continue
        if " " <= char <= "~" and char not in _FALLBACK_UNSAFE:
            chars.append(char)
        else:
            chars.append("_")
    return "".join(chars) or "_"
