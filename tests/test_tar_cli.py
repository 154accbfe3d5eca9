"""``zipwsgi pack`` writing tar and tar.gz: the format from ``--format`` or the ``-o`` name,
the outputs read by GNU tar, bsdtar and tarfile, and the usage errors for contradictions.
(``zipwsgi serve`` answering all three formats is in test_tar_app.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from readers import need, run
from tar_readers import check_all_tar, check_tarfile, gnu_tar_listing

from zipwsgi import cli

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


EXPECTED: dict[str, bytes | None] = {
    "photos/": None,
    "photos/2024/": None,
    "photos/2024/may/": None,
    "photos/2024/may/a.bin": bytes(range(256)) * 64,
    "photos/café/": None,
    "photos/café/menu.txt": b"espresso\n" * 100,
    "photos/Отчёт.txt": "отчёт\n".encode(),
    "notes.txt": b"notes\n",
}


def pack(tree: Path, *args: str) -> int:
    return cli.main(["pack", str(tree), str(tree.parent / "notes.txt"), "-q", *args])


def is_gzip(path: Path) -> bool:
    return path.read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.parametrize(
    ("name", "args", "gzip"),
    [
        ("out.tar", [], False),
        ("out.tar.gz", [], True),
        ("out.tgz", [], True),
        ("OUT.TAR", [], False),
        ("out.bin", ["--format", "tar"], False),
        ("out", ["--format", "tar.gz"], True),
        ("out.tar", ["--format", "tar"], False),
        ("out.tgz", ["--format", "tgz"], True),
        ("out.tar.gz", ["--format", "tar.gz", "--level", "1"], True),
    ],
)
def test_pack_writes_tar_by_name_or_flag(
    tree: Path, tmp_path: Path, name: str, args: list[str], gzip: bool
) -> None:
    out = tmp_path / name
    assert pack(tree, "-o", str(out), *args) == 0
    assert is_gzip(out) == gzip
    if not gzip:
        assert out.stat().st_size % 10240 == 0
    check_tarfile(out, EXPECTED)
    names = [listed for listed, _ in gnu_tar_listing(out)]
    assert sorted(n.rstrip("/") for n in names) == sorted(n.rstrip("/") for n in EXPECTED)


def test_every_tar_reader_opens_the_outputs(tree: Path, tmp_path: Path) -> None:
    for name in ("all.tar", "all.tar.gz"):
        out = tmp_path / name
        assert pack(tree, "-o", str(out)) == 0
        check_all_tar(out, EXPECTED)
        listed = run([need("bsdtar"), "-tf", str(out)]).stdout.decode().split()
        assert "photos/Отчёт.txt" in listed


def test_an_unknown_suffix_is_still_a_zip(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    assert pack(tree, "-o", str(out)) == 0
    assert out.read_bytes()[:2] == b"PK"


@pytest.mark.parametrize("fmt", ["tar", "tar.gz"])
def test_stdout_pipes_into_gnu_tar(tree: Path, tmp_path: Path, fmt: str) -> None:
    tar = need("tar")
    out = tmp_path / "x"
    out.mkdir()
    z = "z" if fmt == "tar.gz" else ""
    command = (f"'{sys.executable}' -m zipwsgi pack '{tree}' --format {fmt} "
               f"| {tar} -x{z}f - -C '{out}'")
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], env=ENV,
                            capture_output=True, timeout=60)
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert (out / "photos" / "Отчёт.txt").read_text("utf-8") == "отчёт\n"
    assert (out / "photos" / "2024" / "may" / "a.bin").read_bytes() == bytes(range(256)) * 64


def test_the_same_input_packs_to_the_same_bytes(tree: Path, tmp_path: Path) -> None:
    for name in ("a.tar", "b.tar", "a.tgz", "b.tgz"):
        assert pack(tree, "-o", str(tmp_path / name)) == 0
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "x.zip", "--format", "tar"],
         "--format tar contradicts the output name x.zip (a zip name)"),
        (["-o", "x.tar", "--format", "zip"], "--format zip contradicts the output name x.tar"),
        (["-o", "x.tgz", "--format", "tar"], "--format tar contradicts the output name x.tgz"),
        (["-o", "x.tar", "--format", "tar.gz"], "contradicts the output name x.tar"),
        (["-o", "x.tar.xz"], "cannot write x.tar.xz: zipwsgi writes zip, tar and tar.gz"),
        (["-o", "x.tbz2", "--format", "tar"], "cannot write x.tbz2"),
        (["-o", "x.tar", "--compression", "deflate"], "--compression is for zip archives"),
        (["-o", "x.tgz", "--compression", "stored"], "a tar.gz is gzip-compressed as a whole"),
        (["-o", "x.tar", "--level", "3"], "--level needs --format tar.gz"),
        (["-o", "x.zip", "--level", "3"], "--level needs --compression deflate"),
        (["--format", "7z"], "argument --format: must be zip, tar or tar.gz (or tgz), not '7z'"),
    ],
)
def test_contradictions_are_usage_errors_and_write_nothing(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], args: list[str], message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["pack", str(tree), *args]) == 2
    assert message in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["in"]


def test_refuses_to_write_a_tar_to_a_terminal(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert cli.main(["pack", str(tree), "--format", "tar.gz"]) == 2
    assert "refusing to write a tar.gz archive to a terminal" in capsys.readouterr().err


def test_help_names_the_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pack", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--format zip|tar|tar.gz" in text and ".tgz" in text
