"""zipwsgi: stream zip archives from any WSGI application, lazily and exactly sized.

The HTTP pieces (``ZipMiddleware``, ``ZipApp``, ``archive_response``) are imported on
first use, so code that only builds archives never loads WebOb: a smaller process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zipwsgi._version import __version__
from zipwsgi.engine.tarstream import TarStream
from zipwsgi.engine.zipstream import ZipStream
from zipwsgi.errors import (
    ArchiveNameError,
    DuplicateNameError,
    ManifestError,
    OutsideRootError,
    SourceChangedError,
    SourceError,
    SourceUnavailableError,
    ZipwsgiError,
)

if TYPE_CHECKING:
    from zipwsgi.app import ZipApp
    from zipwsgi.http.disposition import content_disposition
    from zipwsgi.http.middleware import ZipMiddleware
    from zipwsgi.http.responses import archive_response

_LAZY = {
    "ZipApp": "app",
    "ZipMiddleware": "http.middleware",
    "archive_response": "http.responses",
    "content_disposition": "http.disposition",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zipwsgi' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "__version__",
    "ZipStream",
    "TarStream",
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
