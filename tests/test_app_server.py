"""ZipApp behind real servers: waitress with curl, the Flask example, ``zipwsgi serve``.

webtest proves the HTTP rules in-process; these prove the same bytes reach a real client
over a socket, that a newcomer's commands work as the README says, and that what
``zipwsgi pack`` writes opens in unzip, 7z and bsdtar.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from browser import live_server
from servers import stop_process
from share_tree import SECRET, check_zip, file_names, run_reader
from webtest import TestApp

import zipwsgi
from zipwsgi import ZipApp

REPO = Path(__file__).resolve().parent.parent
DEMO = Path(zipwsgi.__file__).resolve().parent / "demo"
URL = re.compile(r"(http://\S+?/)\s*$")


def curl(*args: str, ok: bool = True) -> subprocess.CompletedProcess[bytes]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    result = subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=60)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def status_and_body(url: str, *extra: str) -> tuple[int, bytes]:
    result = curl("--path-as-is", "-o", "-", "-w", "\n%{http_code}", *extra, url)
    body, _, code = result.stdout.rpartition(b"\n")
    return int(code), body


# --- waitress in a thread, curl as the client --------------------------------------------


def test_curl_downloads_what_webtest_sees(root: Path, tmp_path: Path) -> None:
    app = ZipApp(root)
    expected = TestApp(app).get("/docs.zip").body
    with live_server(app) as url:
        target = tmp_path / "docs.zip"
        headers = curl("-D", "-", "-o", str(target), url + "docs.zip").stdout.decode()
    assert target.read_bytes() == expected
    assert re.search(rf"(?im)^content-length: {len(expected)}\r$", headers)
    assert 'filename="docs.zip"' in headers
    check_zip(target.read_bytes(), readers=("unzip", "7z", "bsdtar"))


def test_curl_resumes_a_download(root: Path, tmp_path: Path) -> None:
    app = ZipApp(root)
    expected = TestApp(app).get("/?download").body
    target = tmp_path / "share.zip"
    with live_server(app) as url:
        curl("-r", "0-199", "-o", str(target), url + "?download")
        assert target.stat().st_size == 200
        curl("-C", "-", "-o", str(target), url + "?download")  # continues at byte 200
    assert target.read_bytes() == expected
    check_zip(expected)


def test_curl_head_selection_and_accept(root: Path) -> None:
    app = ZipApp(root)
    with live_server(app) as url:
        head = curl("-I", url + "docs.zip").stdout.decode()
        assert head.startswith("HTTP/1.1 200") and "Content-Length:" in head
        posted = curl("-d", "path=a.txt", "-d", "path=b", url + "docs/").stdout
        assert check_zip(posted).namelist() == ["a.txt", "b/", "b/c.txt"]
        queried = curl(url + "docs/?path=a.txt&path=b").stdout
        assert queried == posted
        accepted = curl("-H", "Accept: application/zip", url + "caf%C3%A9/").stdout
        assert file_names(check_zip(accepted)) == ["café/menu.txt"]
        page = curl(url + "docs/").stdout.decode()
        assert 'value="a.txt"' in page


def test_curl_deflate(root: Path) -> None:
    with live_server(ZipApp(root, compression="deflate")) as url:
        body = curl(url + "?download").stdout
    archive = check_zip(body, readers=("unzip", "7z"))
    assert archive.getinfo("share/docs/a.txt").compress_type == zipfile.ZIP_DEFLATED


@pytest.mark.parametrize(
    "path",
    ["../outside/secret.txt", "%2e%2e/outside/secret.txt", "..%2foutside%2fsecret.txt",
     "docs/../../outside/secret.txt", "escape/secret.txt", "leak.txt", "escape.zip",
     "abs/", ".private/key.txt", "docs/..%5c..%5coutside%5csecret.txt", "%00"],
)
def test_traversal_over_the_wire(root: Path, path: str) -> None:
    """``--path-as-is``: curl sends the dots as typed; waitress and ZipApp must hold."""
    with live_server(ZipApp(root)) as url:
        for target in (url + path, url + "?path=" + path, url + "docs/?path=" + path):
            code, body = status_and_body(target)
            assert code in (403, 404), (target, code)
            assert SECRET not in body and b"SECRET" not in body


# --- a newcomer's commands ---------------------------------------------------------------


@contextmanager
def running(command: list[str], timeout: float = 30) -> Iterator[tuple[str, list[str]]]:
    """Start ``command``, wait for the first URL it prints; yield (url, output so far).

    The process is stopped by its own pid on the way out, whatever happened.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "examples")])}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    output: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if URL.search(line):
                found.set()
        found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        found.wait(timeout)
        urls = [m.group(1) for line in output if (m := URL.search(line))]
        if not urls:
            raise AssertionError(f"{command} printed no URL:\n{''.join(output)}")
        yield urls[0], output
    finally:
        stop_process(process, reader)


def zipwsgi_command() -> list[str]:
    script = Path(sys.executable).parent / "zipwsgi"
    return [str(script)] if script.exists() else [sys.executable, "-m", "zipwsgi"]


def test_example_beside_flask(root: Path, tmp_path: Path) -> None:
    example = REPO / "examples" / "standalone_beside_flask.py"
    command = [sys.executable, str(example), "--files", str(root), "--port", "0"]
    with running(command) as (url, output):
        home = curl(url).stdout.decode()
        assert "This page is Flask." in home and 'href="/files/"' in home
        code, _ = status_and_body(url + "files")
        assert code in (301, 308)
        redirect = curl("-o", "/dev/null", "-w", "%{redirect_url}", url + "files/docs").stdout
        assert redirect.decode() == url + "files/docs/"
        page = curl(url + "files/docs/").stdout.decode()
        assert 'action="/files/docs/"' in page and 'href="/files/docs.zip"' in page
        assert '<a href="/files/">share</a>' in page
        target = tmp_path / "docs.zip"
        curl("-o", str(target), url + "files/docs.zip")
        assert file_names(check_zip(target.read_bytes())) == ["docs/a.txt", "docs/b/c.txt"]
        picked = curl("-d", "path=README.txt&path=caf%C3%A9", url + "files/").stdout
        assert file_names(check_zip(picked)) == ["README.txt", "café/menu.txt"]
        assert status_and_body(url + "nothing")[0] == 404  # Flask's own 404
        assert status_and_body(url + "files/../../outside/secret.txt")[0] in (403, 404)
    assert f"shared files: {url}files/" in "".join(output)


def test_zipwsgi_serve_serves_the_demo(tmp_path: Path) -> None:
    command = [*zipwsgi_command(), "serve", str(DEMO), "--port", "0"]
    with running(command) as (url, output):
        assert f"Serving {DEMO}" in "".join(output)
        page = curl(url).stdout.decode()
        for name in ("README.txt", "café", "docs", "Отчёт.txt"):
            assert f'value="{name}"' in page
        assert ".hidden-notes.txt" not in page
        target = tmp_path / "demo.zip"
        headers = curl("-D", "-", "-o", str(target), url + "?download").stdout.decode()
        assert 'filename="demo.zip"' in headers
        body = target.read_bytes()
        names = file_names(check_zip(body, readers=("unzip", "7z", "bsdtar")))
        assert "demo/docs/guide/faq.md" in names and "demo/.hidden-notes.txt" not in names
        picked = curl("-d", "path=docs/overview.md", url).stdout
        assert check_zip(picked).namelist() == ["docs/overview.md"]


def test_zipwsgi_pack_opens_in_every_reader(tmp_path: Path) -> None:
    target = tmp_path / "demo.zip"
    result = subprocess.run(
        [*zipwsgi_command(), "pack", str(DEMO), "-o", str(target), "-q"],
        capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    archive = check_zip(target.read_bytes(), readers=("unzip", "7z", "bsdtar"))
    expected = sorted(
        "demo/" + p.relative_to(DEMO).as_posix() for p in DEMO.rglob("*") if p.is_file()
    )
    assert file_names(archive) == expected
    # And the bytes survive extraction by each reader.
    for reader, command in {
        "unzip": ["unzip", "-q", str(target), "-d"],
        "7z": ["7z", "x", "-bso0", "-bsp0", str(target)],
        "bsdtar": ["bsdtar", "-xf", str(target), "-C"],
    }.items():
        run_reader(reader, target)
        out = tmp_path / reader
        out.mkdir()
        args = [*command, str(out)] if reader != "7z" else [*command, f"-o{out}"]
        subprocess.run(args, check=True, capture_output=True, timeout=60)
        for name in expected:
            extracted = out / name
            assert extracted.read_bytes() == (DEMO.parent / name).read_bytes(), (reader, name)
