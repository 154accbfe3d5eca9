"""The ``zipwsgi`` command line: ``pack`` to a file and through a pipe, ``serve``'s
wiring, and the errors and exit codes people see when they get something wrong."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest

from zipwsgi import cli
from zipwsgi._version import __version__
from zipwsgi.errors import SourceChangedError

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

# Reads a whole archive from stdin, checks every CRC, prints the names: a reader at the
# end of a pipe, the way people use `zipwsgi pack`.
CHECK_ZIP = (
    "import io, sys, zipfile\n"
    "z = zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))\n"
    "assert z.testzip() is None\n"
    "sys.stdout.buffer.write('\\n'.join(sorted(z.namelist())).encode('utf-8'))\n"
)


EXPECTED = {
    "photos/Отчёт.txt": "отчёт\n".encode(),
    "photos/café/menu.txt": b"espresso\n" * 100,
    "photos/2024/may/a.bin": bytes(range(256)) * 64,
    "notes.txt": b"notes\n",
}


def files_in(archive: zipfile.ZipFile) -> dict[str, bytes]:
    assert archive.testzip() is None
    return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "zipwsgi", *args], env=ENV, capture_output=True, **kwargs
    )


# --- pack --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [[], ["--compression", "deflate"], ["--compression", "deflate", "--level", "1"]]
)
def test_pack_to_file(tree: Path, tmp_path: Path, options: list[str]) -> None:
    out = tmp_path / "out.zip"
    code = cli.main(["pack", str(tree), str(tree.parent / "notes.txt"), "-o", str(out), *options])
    assert code == 0
    with zipfile.ZipFile(out) as archive:
        assert files_in(archive) == EXPECTED
        names = archive.namelist()
    assert "photos/" in names and "photos/2024/may/" in names
    deflated = "deflate" in options
    with zipfile.ZipFile(out) as archive:
        kinds = {i.compress_type for i in archive.infolist() if not i.is_dir()}
    assert kinds == {zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED}


def test_pack_uses_each_paths_basename(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.zip"
    assert cli.main(["pack", str(tree / "café") + os.sep, "-o", str(out)]) == 0
    with zipfile.ZipFile(out) as archive:
        assert files_in(archive) == {"café/menu.txt": b"espresso\n" * 100}


def test_pack_to_stdout_pipes_into_a_reader(tree: Path) -> None:
    packer = subprocess.Popen(
        [sys.executable, "-m", "zipwsgi", "pack", str(tree), str(tree.parent / "notes.txt")],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert packer.stdout is not None and packer.stderr is not None
    try:
        reader = subprocess.run(
            [sys.executable, "-c", CHECK_ZIP], stdin=packer.stdout, capture_output=True
        )
    finally:
        packer.stdout.close()
        errors = packer.stderr.read()
        packer.stderr.close()
        packer.wait()
    assert packer.returncode == 0, errors
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.decode("utf-8").split("\n") == sorted(
        ["photos/", "photos/2024/", "photos/2024/may/", "photos/café/", *EXPECTED]
    )


def test_pack_dash_means_stdout(tree: Path) -> None:
    result = run("pack", str(tree / "café"), "-o", "-")
    assert result.returncode == 0
    with zipfile.ZipFile(io.BytesIO(result.stdout)) as archive:
        assert files_in(archive) == {"café/menu.txt": b"espresso\n" * 100}


def test_pack_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "zeros.bin").write_bytes(bytes(4 * 1024 * 1024))  # far more than a pipe holds
    packer = subprocess.Popen(
        [sys.executable, "-m", "zipwsgi", "pack", str(big)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert packer.stdout is not None and packer.stderr is not None
    assert packer.stdout.read(10).startswith(b"PK")  # like `| head -c 10`
    packer.stdout.close()
    errors = packer.stderr.read()
    packer.stderr.close()
    assert packer.wait(timeout=60) == 1
    assert b"Traceback" not in errors and b"Exception ignored" not in errors, errors


def test_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope")
    out = tmp_path / "out.zip"
    assert cli.main(["pack", missing, "-o", str(out)]) == 1
    assert capsys.readouterr().err == f"zipwsgi: no such file or directory: {missing}\n"
    assert not out.exists()


def test_missing_path_from_the_shell(tmp_path: Path) -> None:
    result = run("pack", str(tmp_path / "nope"))
    assert result.returncode == 1
    assert result.stderr.decode() == f"zipwsgi: no such file or directory: {tmp_path / 'nope'}\n"
    assert result.stdout == b""


def test_two_paths_with_one_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.txt").write_text(folder)
    paths = [str(tmp_path / "a" / "x.txt"), str(tmp_path / "b" / "x.txt")]
    assert cli.main(["pack", *paths, "-o", str(tmp_path / "out.zip")]) == 1
    assert "would both be stored as 'x.txt'" in capsys.readouterr().err


def test_output_inside_an_input(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tree / "self.zip"
    assert cli.main(["pack", str(tree), "-o", str(out)]) == 1
    assert "is inside" in capsys.readouterr().err
    assert not out.exists()


def test_output_folder_missing(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no" / "such" / "out.zip"
    assert cli.main(["pack", str(tree), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zipwsgi: ") and str(out) in err and "Traceback" not in err


def test_failure_midway_removes_the_partial_file(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing_write(chunks: object, out: io.BufferedWriter, progress: object) -> None:
        out.write(b"PK partial")
        raise SourceChangedError("photos/a.bin changed size while streaming")

    monkeypatch.setattr(cli.pack_command, "_write", failing_write)
    out = tmp_path / "out.zip"
    assert cli.main(["pack", str(tree), "-o", str(out)]) == 1
    assert capsys.readouterr().err == "zipwsgi: photos/a.bin changed size while streaming\n"
    assert not out.exists()


def test_refuses_to_write_binary_to_a_terminal(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert cli.main(["pack", str(tree)]) == 2
    assert "refusing to write a zip archive to a terminal" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pack", ".", "--level", "3"], "--level needs --compression deflate"),
        (["pack", ".", "--compression", "deflate", "--level", "10"], "from 0 to 9"),
        (["pack", ".", "--compression", "zstd"], "invalid choice"),
        (["pack"], "required: PATH"),
        ([], "required: COMMAND"),
        (["serve", ".", "--port", "70000"], "from 0 to 65535"),
    ],
)
def test_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


def test_progress_bar() -> None:
    stream = io.StringIO()
    progress = cli.pack_command._Progress(2048, stream)
    progress.advance(1024)
    progress.advance(1024)
    progress.finish()
    last = stream.getvalue().split("\r")[-1]
    full = "#" * cli.pack_command._Progress.WIDTH
    assert last.startswith("[" + full + "] 100%  2.0 KiB / 2.0 KiB")
    assert last.endswith("\n")


# --- version and help --------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"zipwsgi {__version__}\n"


@pytest.mark.parametrize("command", [[], ["serve"], ["pack"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*command, "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: zipwsgi")


def test_python_dash_m() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.decode() == f"zipwsgi {__version__}\n"


# --- serve -------------------------------------------------------------------------


def test_serve_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err == f"zipwsgi: no such file or directory: {tmp_path / 'nope'}\n"


def test_serve_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    assert cli.main(["serve", str(tmp_path / "f")]) == 1
    assert capsys.readouterr().err == f"zipwsgi: not a directory: {tmp_path / 'f'}\n"


def test_serve_builds_the_app_and_prints_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The wiring only: the app and waitress are stand-ins (the app has its own tests)."""
    made: dict[str, object] = {}

    class FakeApp:
        def __init__(self, root: str, **options: object) -> None:
            made.update(root=root, **options)

    class FakeServer:
        effective_host, effective_port = "127.0.0.1", 8765

        def run(self) -> None:
            made["ran"] = True

        def close(self) -> None:
            made["closed"] = True

    def create_server(app: object, **options: object) -> FakeServer:
        made["server_options"] = options
        assert isinstance(app, FakeApp)
        return FakeServer()

    monkeypatch.setitem(sys.modules, "zipwsgi.app", types.SimpleNamespace(ZipApp=FakeApp))
    monkeypatch.setattr("waitress.server.create_server", create_server)
    code = cli.main(
        ["serve", str(tmp_path), "--port", "0", "--compression", "deflate", "--show-hidden",
         "--validator", "portable"]
    )
    assert code == 0
    options = made.pop("server_options")
    assert made == {
        "root": str(tmp_path),
        "compression": "deflate",
        "show_hidden": True,
        "validator": "portable",
        "ran": True,
        "closed": True,
    }
    assert isinstance(options, dict)
    assert options["host"] == "127.0.0.1" and options["port"] == 0
    assert options["threads"] == 128  # zipwsgi.serve's limits; tests/test_serve.py has more
    assert "http://127.0.0.1:8765/" in capsys.readouterr().out


def test_serve_port_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def create_server(app: object, **options: object) -> None:
        raise OSError(98, "Address already in use")

    monkeypatch.setitem(sys.modules, "zipwsgi.app", types.SimpleNamespace(ZipApp=lambda *a, **k: 0))
    monkeypatch.setattr("waitress.server.create_server", create_server)
    assert cli.main(["serve", str(tmp_path)]) == 1
    assert "cannot listen on 127.0.0.1:8080: Address already in use" in capsys.readouterr().err
