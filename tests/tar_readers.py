"""Real tar readers as test oracles: GNU tar, bsdtar, 7-Zip, busybox and Python's tarfile.

Every ``check_*`` function reads an archive file (``.tar`` or ``.tar.gz``) with one
independent reader, from the file or through a real pipe, and raises ``AssertionError``
with the reader's own output when what it extracts differs from ``expected`` (archive
name -> bytes, or ``None`` for a folder whose name ends in ``/``). A reader that is not
installed skips, or fails with ``ZIPWSGI_REQUIRE_READERS=1`` (``readers.need``).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from typing import Callable, Mapping, Optional

from readers import (
    Expected,
    PathLike,
    _compare,
    _describe,
    _tree,
    check_bsdtar_file,
    check_bsdtar_pipe,
    need,
    pipe_into,
    run,
    run_checks,
    scratch_dir,
)

#: GNU tar 1.34 does not know POSIX's ``hdrcharset`` keyword (written for names that are
#: not UTF-8); it says so and extracts the raw name correctly anyway.
GNU_TAR_HDRCHARSET = "Ignoring unknown extended header keyword 'hdrcharset'"


def _is_gzip(path: PathLike) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _quiet(
    cmd: list[str], proc: subprocess.CompletedProcess, allowed: tuple[str, ...] = ()
) -> None:
    """A reader that exited 0 must not have complained either (warnings, lone zero
    blocks, skipped headers), except for the ``allowed`` messages."""
    lines = [
        line
        for line in proc.stderr.decode("utf-8", "replace").splitlines()
        if line.strip() and not any(text in line for text in allowed)
    ]
    if lines:
        raise AssertionError(_describe(cmd, proc.returncode, proc.stdout, proc.stderr))


# --- Python's tarfile ---------------------------------------------------------------------


def tarfile_entries(
    fileobj: io.BufferedIOBase, mode: str
) -> tuple[dict[str, Optional[bytes]], dict[str, tarfile.TarInfo]]:
    got: dict[str, Optional[bytes]] = {}
    infos: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(fileobj=fileobj, mode=mode) as tf:
        for info in tf:
            name = info.name + "/" if info.isdir() else info.name
            assert name not in got, f"tarfile {mode}: {name!r} twice"
            if info.isdir():
                got[name] = None
            else:
                assert info.isreg(), f"tarfile {mode}: {name!r} is type {info.type!r}"
                member = tf.extractfile(info)
                assert member is not None
                got[name] = member.read()
            infos[name] = info
    return got, infos


def check_tarfile(
    path: PathLike,
    expected: Expected,
    *,
    streaming: bool = False,
    mtimes: Optional[Mapping[str, int]] = None,
    modes: Optional[Mapping[str, int]] = None,
) -> dict[str, tarfile.TarInfo]:
    """``tarfile.open(mode="r:*")`` (random access) or ``"r|*"`` (a stream, no seeking):
    names, contents, folder types, uid/gid 0 and empty owner names, and ``mtimes`` /
    ``modes`` (permission bits) where given. Returns the members' TarInfo."""
    mode = "r|*" if streaming else "r:*"
    try:
        with open(path, "rb") as f:
            source = _Unseekable(f) if streaming else f
            got, infos = tarfile_entries(source, mode)  # type: ignore[arg-type]
    except (tarfile.TarError, OSError, EOFError, UnicodeError) as exc:
        raise AssertionError(f"tarfile {mode}: {type(exc).__name__}: {exc}") from exc
    assert sorted(got) == sorted(expected), (
        f"tarfile {mode}: names differ:\n got {sorted(got)[:50]}\nwant {sorted(expected)[:50]}"
    )
    _compare(f"tarfile {mode}", got, expected)
    for name, info in infos.items():
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", ""), (
            f"tarfile: owner of {name!r}: {info.uid}/{info.gid} {info.uname!r}/{info.gname!r}"
        )
        if mtimes is not None and name in mtimes:
            assert info.mtime == mtimes[name], f"tarfile: mtime of {name!r}: {info.mtime}"
        if modes is not None and name in modes:
            assert info.mode == modes[name] & 0o7777, f"tarfile: mode of {name!r}: {info.mode:o}"
    return infos


class _Unseekable(io.RawIOBase):
    """A file that cannot seek or tell: what a pipe or a socket gives a reader."""

    def __init__(self, f: io.BufferedReader) -> None:
        self.f = f

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        data = self.f.read(min(len(buffer), 4093))  # odd sizes: no block alignment
        buffer[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return False


# --- GNU tar ------------------------------------------------------------------------------


def _gnu_flags(path: PathLike) -> list[str]:
    return ["-z"] if _is_gzip(path) else []


def check_gnu_tar_file(path: PathLike, expected: Expected) -> None:
    """``tar -xf ARCHIVE`` (``-z`` for gzip): GNU tar from the file; it must say nothing."""
    tar = need("tar")
    with scratch_dir() as out:
        cmd = [tar, *_gnu_flags(path), "-xf", os.fspath(path), "-C", out]
        _quiet(cmd, run(cmd), (GNU_TAR_HDRCHARSET,))
        _compare("GNU tar -xf FILE", _tree(out), expected)


def check_gnu_tar_pipe(path: PathLike, expected: Expected) -> None:
    """``tar -xf -`` (``-xzf -``) fed through a pipe: GNU tar cannot seek."""
    tar = need("tar")
    with scratch_dir() as out:
        cmd = [tar, *_gnu_flags(path), "-xf", "-", "-C", out]
        code, stdout, stderr = pipe_into(cmd, path)
        proc = subprocess.CompletedProcess(cmd, code, stdout, stderr)
        if code != 0:
            raise AssertionError(_describe(cmd, code, stdout, stderr))
        _quiet(cmd, proc, (GNU_TAR_HDRCHARSET,))
        _compare("GNU tar -xf - (pipe)", _tree(out), expected)


def gnu_tar_listing(path: PathLike, *, pipe: bool = False) -> list[tuple[str, int]]:
    """(size, name) of each member as ``tar -tvf`` prints them (sizes never stored)."""
    tar = need("tar")
    cmd = [tar, *_gnu_flags(path), "--quoting-style=literal", "-tvf"]
    if pipe:
        code, stdout, stderr = pipe_into([*cmd, "-"], path)
        if code != 0:
            raise AssertionError(_describe(cmd, code, stdout, stderr))
    else:
        stdout = run([*cmd, os.fspath(path)]).stdout
    rows = []
    for line in stdout.decode("utf-8", "surrogateescape").splitlines():
        # -rw-r--r-- 0/0   6 1980-01-01 00:00 name
        perms, owner, size, day, clock, name = line.split(None, 5)
        rows.append((name, int(size)))
    return rows


# --- 7-Zip ----------------------------------------------------------------------------------


def check_7z(path: PathLike, expected: Expected) -> None:
    """``7z t`` then ``7z x``; for a ``.tar.gz`` 7-Zip unpacks the gzip layer into the
    ``.tar`` and is asked again for that."""
    sevenzip = need("7z")
    proc = run([sevenzip, "t", "-bd", os.fspath(path)])
    assert b"Everything is Ok" in proc.stdout, _describe(["7z", "t"], 0, proc.stdout, proc.stderr)
    with scratch_dir() as out:
        run([sevenzip, "x", "-bd", "-y", f"-o{out}", os.fspath(path)])
        if _is_gzip(path):
            inner = os.listdir(out)
            assert len(inner) == 1, f"7z x of a .tar.gz gave {inner}"
            tar_path = os.path.join(out, inner[0])
            target = os.path.join(out, "tree")
            proc = run([sevenzip, "x", "-bd", "-y", "-ttar", f"-o{target}", tar_path])
            os.remove(tar_path)
            out_tree = _tree(target)
        else:
            out_tree = _tree(out)
        _compare("7z x", out_tree, expected)


# --- busybox tar ------------------------------------------------------------------------------


def _busybox() -> list[str]:
    return [need("busybox"), "tar"]


def check_busybox_file(path: PathLike, expected: Expected) -> None:
    """``busybox tar -xf ARCHIVE`` (``-z`` for gzip): the small embedded reader."""
    with scratch_dir() as out:
        cmd = [*_busybox(), *_gnu_flags(path), "-xf", os.fspath(path), "-C", out]
        _quiet(cmd, run(cmd))
        _compare("busybox tar -xf FILE", _tree(out), expected)


def check_busybox_pipe(path: PathLike, expected: Expected) -> None:
    with scratch_dir() as out:
        cmd = [*_busybox(), *_gnu_flags(path), "-xf", "-", "-C", out]
        code, stdout, stderr = pipe_into(cmd, path)
        if code != 0 or stderr.strip():
            raise AssertionError(_describe(cmd, code, stdout, stderr))
        _compare("busybox tar -xf - (pipe)", _tree(out), expected)


# --- gzip itself ---------------------------------------------------------------------------------


def check_gzip(path: PathLike) -> None:
    """``gzip -t``: one valid member, its CRC-32 and length checked."""
    run([need("gzip"), "-t", os.fspath(path)])


# --- all of them -------------------------------------------------------------------------------


def tar_checks(
    path: PathLike, expected: Expected, *, busybox: bool = True
) -> list[tuple[str, Callable[[], object]]]:
    checks: list[tuple[str, Callable[[], object]]] = [
        ("tarfile r:*", lambda: check_tarfile(path, expected)),
        ("tarfile r|*", lambda: check_tarfile(path, expected, streaming=True)),
        ("GNU tar file", lambda: check_gnu_tar_file(path, expected)),
        ("GNU tar pipe", lambda: check_gnu_tar_pipe(path, expected)),
        ("bsdtar file", lambda: check_bsdtar_file(path, expected)),
        ("bsdtar pipe", lambda: check_bsdtar_pipe(path, expected)),
        ("7z", lambda: check_7z(path, expected)),
    ]
    if busybox:
        checks.append(("busybox file", lambda: check_busybox_file(path, expected)))
        checks.append(("busybox pipe", lambda: check_busybox_pipe(path, expected)))
    if _is_gzip(path):
        checks.insert(0, ("gzip -t", lambda: check_gzip(path)))
    return checks


def check_all_tar(path: PathLike, expected: Expected, *, busybox: bool = True) -> None:
    """Every tar reader on ``path``; the missing ones are skipped together at the end."""
    run_checks(tar_checks(path, expected, busybox=busybox))
