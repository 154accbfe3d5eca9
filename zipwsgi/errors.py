"""The exceptions zipwsgi raises, so callers can tell input mistakes from I/O trouble.

Every error a caller may want to handle has its own class; each also derives from the
built-in it is closest to, so code written against ``ValueError``/``OSError`` keeps working.
"""

from __future__ import annotations


class ZipwsgiError(Exception):
    """Base class of everything zipwsgi raises on purpose."""


class ArchiveNameError(ZipwsgiError, ValueError):
    """An archive name would escape the extraction folder or cannot be stored."""


class DuplicateNameError(ArchiveNameError):
    """Two entries share one archive name (readers would silently keep only one)."""


class ArchiveTooLargeError(ZipwsgiError, ValueError):
    """A size no archive can hold: an entry over ``MAX_ENTRY_SIZE``, or an archive whose
    offsets would pass 2**63 - 1 (the signed 64-bit limit of ``off_t`` and of readers)."""


class NestedPathError(ZipwsgiError, ValueError):
    """``add_path`` was given a path inside (or around) one it walked already.

    The files below would go into the archive twice, under two names: the silent result
    of porting ``for p in root.glob("**/*"): zs.add_path(p)``. Add the folder once, or
    its entries one by one with ``recursive=False``.
    """


class SourceError(ZipwsgiError, OSError):
    """A source of entry data could not deliver what the archive plan promised."""


class SourceUnavailableError(SourceError):
    """A source is missing or unreadable (raised before the first byte where possible)."""


class SourceChangedError(SourceError):
    """A source grew, shrank or vanished while it streamed.

    The bytes already sent can no longer form the archive that was announced, so the
    only safe reaction is to abort the response rather than emit a corrupt archive.
    """


class UnknownLengthError(AttributeError, TypeError):
    """``len()`` of an archive whose size cannot be known (compressed, or unsized data).

    A TypeError because that is what ``len()`` raises for objects without a length; an
    AttributeError so ``hasattr(stream, "__len__")`` is False then (WSGI servers call
    ``len()`` on any body that has it).
    """


class Refusal(ZipwsgiError):
    """An archive answer refused before its first byte.

    ``status`` and ``public`` are what the client gets: a generic text that never echoes
    the manifest (the backend's private message) or a path. ``detail`` names the entry
    and the reason, for the log only.
    """

    def __init__(self, detail: str, public: str = "", status: int = 500) -> None:
        super().__init__(detail)
        self.detail = detail
        self.public = public or "the archive could not be built"
        self.status = status


class OutsideRootError(ZipwsgiError, PermissionError):
    """A path resolves (after decoding and following symlinks) outside its allowed root."""


class PathTooLongError(ZipwsgiError, OSError):
    """A requested path is longer or deeper than any served file can be
    (:data:`zipwsgi.paths.MAX_PATH_BYTES`, :data:`~zipwsgi.paths.MAX_PATH_DEPTH`)."""


class ManifestError(ZipwsgiError, ValueError):
    """A mod_zip-style manifest is malformed or exceeds the configured limits."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"manifest line {line}: {message}" if line else message)


class SubrequestError(SourceError):
    """A sub-request to the wrapped app for a manifest entry did not answer 200 as promised.

    ``status`` is the app's status line, or None when the app raised or sent no status.
    """

    def __init__(self, message: str, status: str | None = None) -> None:
        self.status = status
        super().__init__(message)
