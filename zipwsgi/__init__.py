"""zipwsgi: stream zip archives from any WSGI application, lazily and exactly sized."""

from ._version import __version__
from .app import ZipApp
from .disposition import content_disposition
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
from .middleware import ZipMiddleware
from .responses import archive_response
from .stream import ZipStream

__all__ = [
    "__version__",
    "ZipStream",
    "ZipApp",
    "ZipMiddleware",
    "archive_response",
    "content_disposition",
    "ZipwsgiError",
    "ArchiveNameError",
    "DuplicateNameError",
    "ManifestError",
    "OutsideRootError",
    "SourceChangedError",
    "SourceError",
    "SourceUnavailableError",
]
