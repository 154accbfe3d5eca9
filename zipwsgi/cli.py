"""The ``zipwsgi`` command: serve a folder as zip downloads, or pack paths into a zip.

Usage::

    zipwsgi serve [DIR] [--host 127.0.0.1] [--port 8080] [--compression stored|deflate]
    zipwsgi pack PATH... [-o FILE] [--compression stored|deflate] [--level N]
    zipwsgi --version

``pack`` writes to stdout when no file is given, so it pipes (``zipwsgi pack photos |
ssh host 'cat > photos.zip'``); it refuses to write binary to a terminal.

Exit codes: 0 success, 1 a path or I/O problem (the message says which path), 2 a usage
error, 130 interrupted. Messages go to stderr, prefixed with ``zipwsgi:``.

Security note: ``serve`` binds to 127.0.0.1 unless told otherwise; ``--host 0.0.0.0``
hands the folder to anyone who can reach the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING

from zipwsgi._version import __version__
from zipwsgi.errors import ZipwsgiError

if TYPE_CHECKING:
    from zipwsgi.engine.stream import ZipStream

__all__ = ["main"]

PROG = "zipwsgi"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure to report as ``zipwsgi: <message>`` with an exit code, no traceback."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def _error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


# --- serve -------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    root = args.dir
    if not os.path.exists(root):
        raise CommandError(f"no such file or directory: {root}")
    if not os.path.isdir(root):
        raise CommandError(f"not a directory: {root}")
    try:
        from zipwsgi.app import ZipApp
    except ImportError as exc:
        raise CommandError(f"the standalone app (zipwsgi.app) is not available: {exc}") from exc
    from waitress.server import create_server

    app = ZipApp(root, compression=args.compression, show_hidden=args.show_hidden)
    try:
        server = create_server(app, host=args.host, port=args.port)
    except OSError as exc:
        reason = exc.strerror or exc
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {reason}") from exc
    # One host name may resolve to several addresses (localhost: IPv4 and IPv6).
    listen = getattr(server, "effective_listen", None) or [
        (server.effective_host, server.effective_port)
    ]
    print(f"Serving {os.path.abspath(root)}", flush=True)
    for host, port in listen:
        shown = f"[{host}]" if ":" in str(host) else host
        print(f"  http://{shown}:{port}/", flush=True)
    print("Press Ctrl+C to stop.", flush=True)
    try:
        server.run()  # returns after shutting its workers down on Ctrl+C
    except KeyboardInterrupt:  # pragma: no cover - waitress normally catches it
        pass
    finally:
        server.close()
    return EXIT_OK


# --- pack --------------------------------------------------------------------------


def _arcnames(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Pair each path with the name it gets in the archive: its basename.

    Checked up front so a typo fails before any byte is written.
    """
    pairs: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for path in paths:
        if not os.path.exists(path):
            raise CommandError(f"no such file or directory: {path}")
        name = os.path.basename(os.path.normpath(os.path.abspath(path)))
        if not name:
            raise CommandError(f"cannot pack the file system root: {path}")
        if name in seen:
            raise CommandError(f"{seen[name]} and {path} would both be stored as {name!r}")
        seen[name] = path
        pairs.append((path, name))
    return pairs


def _check_output_outside(output: str, paths: Sequence[str]) -> None:
    """Refuse an output file inside what is being packed: it would read itself as it grows."""
    target = os.path.realpath(output)
    for path in paths:
        source = os.path.realpath(path)
        if target == source or (
            os.path.isdir(source) and os.path.commonpath([source, target]) == source
        ):
            raise CommandError(f"the output file {output} is inside {path}; write it elsewhere")


class _Progress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    WIDTH = 30

    def __init__(self, total: int | None, stream: IO[str]) -> None:
        self.total = total
        self.stream = stream
        self.done = 0
        self._drawn_at = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._drawn_at >= 0.1:
            self._drawn_at = now
            self._draw()

    def finish(self) -> None:
        self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self) -> None:
        from zipwsgi.app.listing import human_size

        if self.total:
            filled = self.WIDTH * self.done // self.total
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            line = (
                f"[{bar}] {100 * self.done // self.total:3d}%  "
                f"{human_size(self.done)} / {human_size(self.total)}"
            )
        else:
            line = f"{human_size(self.done)} written"
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()


def _build_stream(args: argparse.Namespace, pairs: Sequence[tuple[str, str]]) -> ZipStream:
    try:
        from zipwsgi.engine.stream import ZipStream
    except ImportError as exc:
        raise CommandError(f"the zip engine (zipwsgi.engine.stream) is not available: {exc}") from exc
    if args.level is None:
        zs = ZipStream(compression=args.compression)
    else:
        zs = ZipStream(compression=args.compression, level=args.level)
    try:
        for path, name in pairs:
            zs.add_path(path, name)
    except BaseException:
        zs.close()
        raise
    return zs


def _write(chunks: Iterable[bytes], out: IO[bytes], progress: _Progress | None) -> None:
    iterator: Iterator[bytes] = iter(chunks)
    try:
        for chunk in iterator:
            out.write(chunk)
            if progress is not None:
                progress.advance(len(chunk))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # release the source file it may hold open


def _pack_to_file(zs: ZipStream, output: str, quiet: bool) -> None:
    show = not quiet and sys.stderr.isatty()
    progress = _Progress(zs.size, sys.stderr) if show else None
    try:
        with open(output, "wb") as out:
            _write(zs, out, progress)
    except BaseException:
        if progress is not None:
            sys.stderr.write("\n")  # end the bar's line before the error message
        # A half-written archive looks valid to nobody; don't leave one behind.
        with contextlib.suppress(OSError):
            os.unlink(output)
        raise
    if progress is not None:
        progress.finish()


def _pack_to_stdout(zs: ZipStream) -> int:
    out = sys.stdout.buffer
    try:
        _write(zs, out, None)
        out.flush()
    except BrokenPipeError:
        # The reader left (`| head`). Point stdout at devnull so the interpreter's final
        # flush does not raise again, and exit quietly, as pipeline tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_FAILURE
    return EXIT_OK


def _pack(args: argparse.Namespace) -> int:
    if args.level is not None and args.compression != "deflate":
        raise CommandError("--level needs --compression deflate", EXIT_USAGE)
    to_stdout = args.output in (None, "-")
    if to_stdout and sys.stdout.isatty():
        raise CommandError(
            "refusing to write a zip archive to a terminal; use -o FILE or redirect stdout",
            EXIT_USAGE,
        )
    pairs = _arcnames(args.paths)
    if not to_stdout:
        _check_output_outside(args.output, args.paths)
    zs = _build_stream(args, pairs)
    try:
        if to_stdout:
            return _pack_to_stdout(zs)
        _pack_to_file(zs, args.output, args.quiet)
        return EXIT_OK
    finally:
        zs.close()


# --- command line ------------------------------------------------------------------


def _level(text: str) -> int:
    try:
        level = int(text)
    except ValueError:
        level = -1
    if not 0 <= level <= 9:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 9, not {text!r}")
    return level


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {text!r}")
    return port


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, public so docs and tests can inspect the commands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Stream folders and files as zip archives.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve = commands.add_parser(
        "serve",
        help="serve a folder: a web page to pick entries, and zip downloads",
        description="Serve DIR over HTTP: browse it, and download folders or a selection "
        "as zip archives.",
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
    serve.set_defaults(handler=_serve)

    pack = commands.add_parser(
        "pack",
        help="write a zip of files and folders to a file or stdout",
        description="Write a zip archive of the PATHs; each is stored under its own name, "
        "folders recursively. Without -o, the archive goes to stdout.",
    )
    pack.add_argument("paths", metavar="PATH", nargs="+", help="file or folder to include")
    pack.add_argument("-o", "--output", metavar="FILE",
                      help="write to FILE instead of stdout ('-' means stdout)")
    pack.add_argument("--compression", choices=("stored", "deflate"), default="stored",
                      help="how entries are stored (default: %(default)s)")
    pack.add_argument("--level", type=_level, metavar="N",
                      help="deflate level, 0 (fastest) to 9 (smallest)")
    pack.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    pack.set_defaults(handler=_pack)
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
        return args.handler(args)
    except CommandError as exc:
        _error(str(exc))
        return exc.code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except ZipwsgiError as exc:
        _error(str(exc))
        return EXIT_FAILURE
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}")
        return EXIT_FAILURE
