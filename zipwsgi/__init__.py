"""zipwsgi: stream zip archives from any WSGI application, lazily and exactly sized."""

from ._version import __version__
from .errors import (
    ArchiveNameError,
    DuplicateNameError,
    ManifestError,
    OutsideRootError,
    SourceChangedError,
    SourceError,
    SourceUnavailableError,
    ZipwsgiError,
)
from .stream import ZipStream

__all__ = [
    "__version__",
    "ZipStream",
    "ZipwsgiError",
    "ArchiveNameError",
    "DuplicateNameError",
    "ManifestError",
    "OutsideRootError",
    "SourceChangedError",
    "SourceError",
    "SourceUnavailableError",
]
