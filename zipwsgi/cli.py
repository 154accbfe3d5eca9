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
import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING

from zipwsgi._version import __version__
from zipwsgi.errors import ZipwsgiError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from zipwsgi.engine.stream import ArchiveStream

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


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _credentials(args: argparse.Namespace) -> tuple[str, str] | None:
    """USER:PASSWORD from --auth, --auth-file or $ZIPWSGI_AUTH, in that order; None if none."""
    if args.auth is not None:
        text, where = args.auth, "--auth"
    elif args.auth_file is not None:
        try:
            with open(args.auth_file, encoding="utf-8") as f:
                text = f.readline()
        except OSError as exc:
            raise CommandError(f"cannot read {args.auth_file}: {exc.strerror or exc}") from exc
        where = args.auth_file
    elif os.environ.get("ZIPWSGI_AUTH"):
        text, where = os.environ["ZIPWSGI_AUTH"], "ZIPWSGI_AUTH"
    else:
        return None
    from zipwsgi.app.auth import parse_credentials

    try:
        return parse_credentials(text)
    except ValueError as exc:  # the message never repeats the secret
        raise CommandError(f"{where}: {exc}", EXIT_USAGE) from exc


def _serve(args: argparse.Namespace) -> int:
    root = args.dir
    if not os.path.exists(root):
        raise CommandError(f"no such file or directory: {root}")
    if not os.path.isdir(root):
        raise CommandError(f"not a directory: {root}")
    credentials = _credentials(args)
    try:
        from zipwsgi.app import ZipApp
    except ImportError as exc:
        raise CommandError(f"the standalone app (zipwsgi.app) is not available: {exc}") from exc
    from zipwsgi.serve import ServeSettings, create_server

    app: WSGIApplication = ZipApp(
        root,
        compression=args.compression,
        show_hidden=args.show_hidden,
        validator=args.validator,
    )
    if credentials is not None:
        from zipwsgi.app.auth import BasicAuth

        app = BasicAuth(app, *credentials, realm=os.path.basename(os.path.abspath(root)))
    settings = ServeSettings(threads=args.threads)
    try:
        server = create_server(app, args.host, args.port, settings)
    except OSError as exc:
        reason = exc.strerror or exc
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {reason}") from exc
    if not _is_loopback(args.host):
        guard = "only to those with the --auth password" if credentials else "to anyone"
        _error(
            f"warning: listening on {args.host}: everything under {os.path.abspath(root)} "
            f"is readable {guard} who can reach this address"
            + ("" if credentials else " (see --auth)")
        )
    # One host name may resolve to several addresses (localhost: IPv4 and IPv6).
    listen = getattr(server, "effective_listen", None) or [
        (server.effective_host, server.effective_port)
    ]
    print(f"Serving {os.path.abspath(root)}", flush=True)
    if credentials is not None:
        print(f"  HTTP Basic authentication, user {credentials[0]!r}", flush=True)
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


def _build_stream(
    args: argparse.Namespace, fmt: str, pairs: Sequence[tuple[str, str]]
) -> ArchiveStream:
    from zipwsgi.engine.choice import new_archive

    zs = new_archive(fmt, compression=args.compression or "stored", level=args.level)
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


def _pack_to_file(zs: ArchiveStream, output: str, quiet: bool) -> None:
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


def _pack_to_stdout(zs: ArchiveStream) -> int:
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


# Compressed tars zipwsgi does not write: named as output, they are refused rather than
# filled with a zip or a plain tar under a misleading name.
_OTHER_TAR_SUFFIXES = (".tar.bz2", ".tar.xz", ".tar.zst", ".tar.lz", ".tar.lzma", ".tar.z",
                       ".tbz", ".tbz2", ".txz", ".tzst", ".taz")


def _pack_format(args: argparse.Namespace, to_stdout: bool) -> str:
    """The archive format to write: ``--format``, else the ``-o`` name's, else zip; and
    the options that go with it checked, so a mistake fails before any byte."""
    from zipwsgi.engine.choice import TAR, TAR_GZ, ZIP, format_of_filename

    named = None if to_stdout else format_of_filename(args.output)
    if not to_stdout and args.output.lower().endswith(_OTHER_TAR_SUFFIXES):
        raise CommandError(
            f"cannot write {args.output}: zipwsgi writes zip, tar and tar.gz (.tgz) archives",
            EXIT_USAGE,
        )
    fmt: str = args.format or named or ZIP
    if named is not None and named != fmt:
        raise CommandError(
            f"--format {fmt} contradicts the output name {args.output} (a {named} name); "
            "drop --format or rename the file",
            EXIT_USAGE,
        )
    if fmt != ZIP and args.compression is not None:
        raise CommandError(
            f"--compression is for zip archives; a {fmt} is "
            + ("gzip-compressed as a whole" if fmt == TAR_GZ else "never compressed"),
            EXIT_USAGE,
        )
    if args.level is not None:
        if fmt == TAR:
            raise CommandError("--level needs --format tar.gz (a plain tar is not compressed)",
                               EXIT_USAGE)
        if fmt == ZIP and args.compression != "deflate":
            raise CommandError("--level needs --compression deflate", EXIT_USAGE)
    return fmt


def _pack(args: argparse.Namespace) -> int:
    to_stdout = args.output in (None, "-")
    fmt = _pack_format(args, to_stdout)
    if to_stdout and sys.stdout.isatty():
        raise CommandError(
            f"refusing to write a {fmt} archive to a terminal; use -o FILE or redirect stdout",
            EXIT_USAGE,
        )
    pairs = _arcnames(args.paths)
    if not to_stdout:
        _check_output_outside(args.output, args.paths)
    zs = _build_stream(args, fmt, pairs)
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
    serve.set_defaults(handler=_serve)

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
        return int(args.handler(args))
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
