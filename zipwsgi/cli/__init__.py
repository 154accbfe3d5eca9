"""The ``zipwsgi`` command: serve a folder as archive downloads, or pack paths into one.

Usage::

    zipwsgi serve [DIR] [--host 127.0.0.1] [--port 8080] [--compression stored|deflate]
                  [--show-hidden] [--threads N] [--auth USER:PASSWORD | --auth-file FILE]
    zipwsgi pack PATH... [-o FILE] [--format zip|tar|tar.gz] [--compression stored|deflate]
                 [--level N]
    zipwsgi --version

``pack`` writes to stdout when no file is given, so it pipes (``zipwsgi pack photos |
ssh host 'cat > photos.zip'``); it refuses to write binary to a terminal. Its format is
``--format``, else the one ``-o`` names (``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``), else
zip; a ``--format`` that contradicts the ``-o`` name is a usage error, not a guess.

Exit codes: 0 success, 1 a path or I/O problem (the message says which path), 2 a usage
error, 130 interrupted. Messages go to stderr, prefixed with ``zipwsgi:``.

Security note: ``serve`` binds to 127.0.0.1 unless told otherwise; ``--host 0.0.0.0``
hands the folder to anyone who can reach the machine, and says so on stderr. ``--auth``
(or ``--auth-file``, or ``$ZIPWSGI_AUTH``, which keep the password out of ``ps``) puts
HTTP Basic authentication in front; use it over TLS (README: behind a reverse proxy).
Server limits for slow and idle clients live in :mod:`zipwsgi.serve`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from zipwsgi._version import __version__
from zipwsgi.cli import pack as pack_command
from zipwsgi.cli import serve as serve_command
from zipwsgi.cli.common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CommandError,
    error,
)
from zipwsgi.errors import ZipwsgiError

__all__ = ["main", "build_parser"]


def _level(text: str) -> int:
    try:
        level = int(text)
    except ValueError:
        level = -1
    if not 0 <= level <= 9:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 9, not {text!r}")
    return level


def _format(text: str) -> str:
    from zipwsgi.engine.choice import format_name

    try:
        return format_name(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be zip, tar or tar.gz (or tgz), not {text!r}"
        ) from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {text!r}")
    return port


def _threads(text: str) -> int:
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if not 1 <= threads <= 1024:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 1024, not {text!r}")
    return threads


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, public so docs and tests can inspect the commands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Stream folders and files as zip, tar or tar.gz archives.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve = commands.add_parser(
        "serve",
        help="serve a folder: a web page to pick entries, and zip, tar or tar.gz downloads",
        description="Serve DIR over HTTP: browse it, and download folders or a selection "
        "as zip, tar or tar.gz archives.",
    )
    serve.add_argument("dir", metavar="DIR", nargs="?", default=".",
                       help="folder to serve (default: the current folder)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=_port, default=8080,
                       help="port to listen on; 0 picks a free one (default: %(default)s)")
    serve.add_argument("--compression", choices=("stored", "deflate"), default="stored",
                       help="how entries are stored (default: %(default)s)")
    serve.add_argument("--show-hidden", action="store_true",
                       help="also list and zip names starting with a dot")
    serve.add_argument("--validator", choices=("local", "portable"), default="local",
                       help="what ETags are built from: 'local' sees a file rewritten in "
                       "place on this host; 'portable' gives replicas serving copies the "
                       "same ETags (default: %(default)s)")
    serve.add_argument("--threads", type=_threads, default=128, metavar="N",
                       help="requests served at once; each slow download holds one "
                       "(default: %(default)s)")
    serve.add_argument("--auth", metavar="USER:PASSWORD",
                       help="require HTTP Basic authentication (visible in ps: prefer "
                       "--auth-file or $ZIPWSGI_AUTH)")
    serve.add_argument("--auth-file", metavar="FILE",
                       help="read USER:PASSWORD from the first line of FILE")
    serve.set_defaults(handler=serve_command.run)

    pack = commands.add_parser(
        "pack",
        help="write a zip, tar or tar.gz of files and folders to a file or stdout",
        description="Write an archive of the PATHs; each is stored under its own name, "
        "folders recursively. Without -o, the archive goes to stdout. The format is "
        "--format, else the one -o names (.zip, .tar, .tar.gz, .tgz), else zip.",
    )
    pack.add_argument("paths", metavar="PATH", nargs="+", help="file or folder to include")
    pack.add_argument("-o", "--output", metavar="FILE",
                      help="write to FILE instead of stdout ('-' means stdout)")
    pack.add_argument("--format", type=_format, metavar="zip|tar|tar.gz",
                      help="archive format (default: from the -o name, else zip)")
    pack.add_argument("--compression", choices=("stored", "deflate"),
                      help="how zip entries are stored (default: stored)")
    pack.add_argument("--level", type=_level, metavar="N",
                      help="deflate level of a zip, or gzip level of a tar.gz: "
                      "0 (fastest) to 9 (smallest)")
    pack.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pack.set_defaults(handler=pack_command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.handler(args))
    except CommandError as exc:
        error(str(exc))
        return exc.code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except ZipwsgiError as exc:
        error(str(exc))
        return EXIT_FAILURE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        error(f"{exc.strerror or exc}{where}")
        return EXIT_FAILURE
