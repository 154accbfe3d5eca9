"""``zipwsgi pack``: paths into one archive, to a file (with a progress bar) or stdout."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING

from zipwsgi.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError

if TYPE_CHECKING:
    from zipwsgi.engine.stream import ArchiveStream

__all__ = ["run"]


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


def run(args: argparse.Namespace) -> int:
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
