"""What every example shares: the folder it serves, its manifest, and a waitress runner.

Not an example itself. Each ``*_app.py`` beside it shows the two ways to ask
:class:`zipwsgi.ZipMiddleware` for a zip in one framework; this module only keeps the
command line and the manifest writing out of their way.
"""

from __future__ import annotations

import argparse
import os
import zlib
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import zipwsgi

#: The folder served when ``--files`` is not given: the demo folder shipped with zipwsgi.
DEMO_FILES = Path(zipwsgi.__file__).resolve().parent / "demo"

#: The URL prefix manifests use for files on disk (``roots={FILES_PREFIX: folder}``).
FILES_PREFIX = "/files/"

#: A small document the app itself produces; manifests fetch it by sub-request.
HELLO = b"Hello from the app itself: this entry was fetched by a sub-request.\n"


def walk(folder: str | os.PathLike[str]) -> Iterator[tuple[str, os.stat_result]]:
    """``(relative path, stat)`` of every regular file below ``folder``, sorted."""
    base = Path(folder)
    for path in sorted(base.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path.relative_to(base).as_posix(), path.stat()


def manifest(folder: str | os.PathLike[str]) -> bytes:
    """A mod_zip manifest listing ``folder`` under ``/files/`` plus ``/hello.txt``.

    One line per entry: ``<crc32 or -> <size> <url-encoded location> <name in zip>``.
    ``-`` lets zipwsgi compute the CRC (a CRC given up front spares a data descriptor
    and lets the archive have an ETag even with sub-request entries); locations are
    percent-encoded because a space ends the field; names run to the end of the line.
    """
    lines = [
        f"- {st.st_size} {FILES_PREFIX}{quote(rel)} files/{rel}" for rel, st in walk(folder)
    ]
    # Not under /files/: a sub-request to the app. Its CRC is given because the app knows
    # it, which gives the archive a strong ETag (browsers resume only with one).
    lines.append(f"{zlib.crc32(HELLO):08x} {len(HELLO)} /hello.txt hello.txt")
    return "\r\n".join(lines).encode("utf-8")


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--files", default=str(DEMO_FILES), help="folder to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    return parser.parse_args()


def serve(app, host: str, port: int) -> None:
    """Run ``app`` on waitress; prints the URL (with the real port) once listening."""
    from waitress.server import create_server

    server = create_server(app, host=host, port=port)
    print(f"Serving on http://{host}:{server.effective_port}/", flush=True)
    print(f"  manifest trigger: http://{host}:{server.effective_port}/manifest.zip", flush=True)
    print(f"  ZipStream marker: http://{host}:{server.effective_port}/stream.zip", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
