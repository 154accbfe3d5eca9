"""Public home of the source classes (``zipwsgi.sources.Source``); they live in
:mod:`zipwsgi.engine.sources` and :mod:`zipwsgi.engine.files`."""

from zipwsgi.engine.files import FileSource  # noqa: F401
from zipwsgi.engine.sources import (  # noqa: F401
    BytesSource,
    CallableSource,
    ChunkReader,
    FileObjectSource,
    IterableSource,
    Reader,
    Source,
    source_for,
)

__all__ = [
    "BytesSource",
    "CallableSource",
    "ChunkReader",
    "FileObjectSource",
    "FileSource",
    "IterableSource",
    "Reader",
    "Source",
    "source_for",
]
