"""Tar through ZipMiddleware behind real waitress servers, read by real clients.

``curl ... | tar -xf -`` (``-xzf -`` for tar.gz) for both triggers, ranges and
``curl -C -`` resuming a plain tar to the identical file, and two server processes
(different time zones) serving identical bytes and validators: what a download manager
or a load balancer in front of replicas relies on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from readers import _compare, _tree, need, scratch_dir
from servers import ServerProcess, stop_process, thread_server
from tar_readers import check_all_tar, check_tarfile
from test_tar_http import HELLO, MENU, TEXT, make_app, make_files

ROOT = Path(__file__).resolve().parent.parent

# One app for both triggers, as its own process: what a second replica would run.
SERVER_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{tests!r}, {root!r}]
    from pathlib import Path
    from waitress.server import create_server
    from test_tar_http import make_app

    server = create_server(make_app(Path(sys.argv[1])), host="127.0.0.1", port=0)
    print(f"Serving on http://127.0.0.1:{{server.effective_port}}/", flush=True)
    server.run()
    """
)


@pytest.fixture()
def files(tmp_path: Path) -> Path:
    """test_tar_http's tree with fixed mtimes: two processes must agree on them, and a
    test can rewrite the tree the same way."""
    return make_files(tmp_path / "files", 300_000, mtime=1_700_000_000)


def curl(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    need("curl")
    result = subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result


def headers_of(url: str) -> dict[str, str]:
    lines = curl("-D", "-", "-o", os.devnull, "-H", "Cookie: flavour=tar",
                 url).stdout.decode("latin-1").splitlines()
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}


def manifest_members(files: Path) -> dict[str, bytes | None]:
    return {
        "café/menu.txt": MENU,
        "random.bin": (files / "random.bin").read_bytes(),
        "report.txt": TEXT,
        "empty.txt": b"",
        "hello.txt": HELLO,
        "nothing/": None,
    }


STREAM_MEMBERS: dict[str, bytes | None] = {"café/": None, "café/menu.txt": MENU,
                                           "hello.txt": HELLO}


def gnu_tar_from_curl(url: str, gzip: bool) -> dict[str, bytes | None]:
    """``curl URL | tar -x[z]f -``: GNU tar reading the download as it arrives."""
    tar = need("tar")
    need("curl")
    with scratch_dir() as out:
        command = (f"curl -sS --fail -H 'Cookie: flavour=tar' '{url}' "
                   f"| {tar} -x{'z' if gzip else ''}f - -C '{out}'")
        result = subprocess.run(["bash", "-o", "pipefail", "-c", command],
                                capture_output=True, timeout=120)
        assert result.returncode == 0 and not result.stderr, result.stderr.decode()
        return _tree(out)


# --- both triggers, read from a pipe ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "tgz"])
def test_gnu_tar_extracts_each_trigger_from_a_pipe(files: Path, fmt: str) -> None:
    with thread_server(make_app(files)) as url:
        gzip = fmt != "tar"
        _compare("manifest", gnu_tar_from_curl(url + f"m/{fmt}/photos", gzip),
                 manifest_members(files))
        stream_fmt = "tar.gz" if gzip else "tar"
        _compare("stream", gnu_tar_from_curl(url + f"s/{stream_fmt}/photos", gzip),
                 STREAM_MEMBERS)
        head = headers_of(url + f"m/{fmt}/photos")
        assert head["content-type"] == ("application/gzip" if gzip else "application/x-tar")
        if gzip:
            assert "content-length" not in head and head["transfer-encoding"] == "chunked"
        else:
            assert int(head["content-length"]) % 10240 == 0


def test_downloads_open_in_every_tar_reader(files: Path, tmp_path: Path) -> None:
    with thread_server(make_app(files)) as url:
        for fmt in ("tar", "tar.gz"):
            target = tmp_path / f"photos.{fmt}"
            curl("-H", "Cookie: flavour=tar", "-o", str(target), url + f"m/{fmt}/photos")
            check_all_tar(target, manifest_members(files))


# --- ranges and resume ----------------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["f", "s"])
def test_ranges_over_the_wire(files: Path, tmp_path: Path, trigger: str) -> None:
    with thread_server(make_app(files)) as url:
        target = url + f"{trigger}/tar/photos"
        whole = curl(target).stdout
        size = len(whole)
        for spec, start, stop in [("0-511", 0, 512), (f"1000-{size // 2}", 1000, size // 2 + 1),
                                  (f"{size - 10240}-", size - 10240, size), ("-1", size - 1, size)]:
            result = curl("-r", spec, "-D", str(tmp_path / "h"), target)
            assert result.stdout == whole[start:stop], spec
            assert f"content-range: bytes {start}-{stop - 1}/{size}" in (
                (tmp_path / "h").read_text("latin-1").lower())
        code = curl("-r", f"{size}-", "-o", os.devnull, "-w", "%{http_code}", target).stdout
        assert code == b"416"


@pytest.mark.parametrize("trigger", ["f", "s"])
def test_curl_resumes_a_cut_tar_to_the_identical_file(
    files: Path, tmp_path: Path, trigger: str
) -> None:
    with thread_server(make_app(files)) as url:
        target = url + f"{trigger}/tar/photos"
        whole = tmp_path / "whole.tar"
        curl("-o", str(whole), target)
        data = whole.read_bytes()
        for cut in (1, 512, 1000, len(data) // 2, len(data) - 10240, len(data) - 1):
            part = tmp_path / f"cut-{cut}.tar"
            part.write_bytes(data[:cut])  # what a dropped connection leaves behind
            result = curl("-C", "-", "-o", str(part), "-w", "%{http_code}", target)
            assert result.stdout == b"206", cut
            assert part.read_bytes() == data, cut
    expected = manifest_members(files) if trigger == "f" else STREAM_MEMBERS
    if trigger == "f":
        expected = {k: v for k, v in expected.items() if k != "hello.txt"}
    check_tarfile(whole, expected)


# --- two processes --------------------------------------------------------------------------


@contextmanager
def server_process(files: Path, script: Path, tz: str) -> Iterator[ServerProcess]:
    """The tar app in its own Python process (``TZ=tz``); yields once it serves."""
    process = subprocess.Popen(
        [sys.executable, str(script), str(files)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "TZ": tz},
    )
    output: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if line.startswith("Serving on "):
                started.set()
        started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        started.wait(30)
        serving = [line for line in output if line.startswith("Serving on ")]
        if not serving:
            raise RuntimeError("the tar server did not start:\n" + "".join(output))
        yield ServerProcess(process, serving[0].split()[2], output)
    finally:
        stop_process(process, reader)


def test_two_server_processes_serve_identical_bytes(files: Path, tmp_path: Path) -> None:
    script = tmp_path / "tar_server.py"
    script.write_text(SERVER_SCRIPT.format(tests=str(ROOT / "tests"), root=str(ROOT)))
    paths = ["m/tar/photos", "m/tar.gz/photos", "s/tar/photos", "s/tar.gz/photos",
             "f/tar/photos", "f/tgz/photos"]
    seen: dict[str, dict[str, tuple[bytes, str]]] = {}
    for tz in ("UTC", "Pacific/Kiritimati"):
        with server_process(files, script, tz) as server:
            seen[tz] = {}
            for path in paths:
                body = curl("-H", "Cookie: flavour=tar", server.url + path).stdout
                seen[tz][path] = (body, headers_of(server.url + path).get("etag", ""))
    assert seen["UTC"] == seen["Pacific/Kiritimati"]
    assert seen["UTC"]["f/tar/photos"][1]  # validators exist where the bytes are known


# --- the plain WSGI example ---------------------------------------------------------------


def test_the_wsgi_example_serves_tar_beside_zip(files: Path, tmp_path: Path) -> None:
    """``examples/wsgi_app.py``: the same manifest with ``tar`` in the header, and a
    TarStream marker, hold what its zips hold."""
    import zipfile

    from servers import example_server

    with example_server("wsgi_app", files) as server:
        for trigger in ("manifest", "stream"):
            zipped = tmp_path / f"{trigger}.zip"
            curl("-o", str(zipped), server.url + f"{trigger}.zip")
            with zipfile.ZipFile(zipped) as archive:
                expected = {name: None if name.endswith("/") else archive.read(name)
                            for name in archive.namelist()}
            for fmt in ("tar", "tar.gz"):
                got = gnu_tar_from_curl(server.url + f"{trigger}.{fmt}", fmt == "tar.gz")
                _compare(f"{trigger}.{fmt}", got, expected)
