"""Issue #11, paths: encoded traversal against the standalone app and the middleware's
manifest roots, over a real socket with ``curl --path-as-is`` (so no client tidies the
path first): not one byte of the canary outside the root, not one outside name listed,
and no archive name with CR/LF reaching a header."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from servers import thread_server
from share_tree import SECRET, make_share

from zipwsgi import ZipApp, ZipMiddleware

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "curl"], capture_output=True).returncode != 0, reason="needs curl"
)

CANARY_NAMES = (b"secret.txt", b"TOP-SECRET", b"/etc/passwd", b"root:x:0:0")

ATTACKS = [
    "../outside/secret.txt", "%2e%2e/outside/secret.txt", "%2E%2E%2Foutside%2Fsecret.txt",
    "%252e%252e/outside/secret.txt", "%c0%ae%c0%ae/outside/secret.txt",
    "..%5coutside%5csecret.txt", "..\\outside\\secret.txt", "docs/..%5c..%5coutside",
    "//outside/secret.txt", "docs//..//..//outside/secret.txt", "%2f%2e%2e%2foutside",
    "secret.txt%00.txt", "%00", "docs/%00/../../outside", "C:/outside/secret.txt",
    "C:%5coutside", "c:", "/C:/../outside/secret.txt", "escape/secret.txt", "leak.txt",
    "abs/secret.txt", "root/etc/passwd", "root/", "loop/", "loop/loop/loop/x",
    "docs/deep-escape/secret.txt", "." * 3 + "/outside", "a/" * 20000 + "b",
    "x" * 65536, "docs/" + "%2e%2e/" * 30 + "etc/passwd",
]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    share = make_share(tmp_path)
    os.symlink("/", share / "root")  # a symlink to the file system root
    os.symlink("loop", share / "loop")  # a loop onto itself
    os.symlink("loop-b", share / "loop-a")
    os.symlink("loop-a", share / "loop-b")
    return share


def fetch(*args: str) -> tuple[str, bytes, bytes]:
    """(status line, headers, body) of a curl request sent exactly as written."""
    result = subprocess.run(
        ["curl", "-sS", "--path-as-is", "-D", "/dev/stderr", "-o", "-", "-m", "30", *args],
        capture_output=True, timeout=60,
    )
    headers = result.stderr
    status = headers.split(b"\r\n", 1)[0].decode("latin-1")
    return status, headers, result.stdout


def assert_no_leak(status: str, headers: bytes, body: bytes, what: str) -> None:
    assert SECRET not in body, (what, status)
    for name in CANARY_NAMES:
        assert name not in body and name not in headers, (what, status, name)


def test_standalone_app_leaks_nothing(root: Path) -> None:
    tried = 0
    with thread_server(ZipApp(root)) as url:
        for attack in ATTACKS:
            form = "path=" + attack.replace("%", "%25") if "%" not in attack else "path=" + attack
            for args in (
                [url + attack], [url + attack + ".zip"], [url + attack + "/?download"],
                [url + "?path=" + attack], [url + "docs/?path=" + attack],
                [url + "?download&path=" + attack + "&path=README.txt"],
                ["--data-binary", form, url], ["--data-binary", form, url + "docs/"],
                ["-H", "Accept: application/zip", url + attack + "/"],
            ):
                if len(args[-1]) > 70000:
                    continue
                status, headers, body = fetch(*args)
                tried += 1
                assert_no_leak(status, headers, body, " ".join(a[:80] for a in args))
        # Whole-tree downloads list only what is inside, and never follow links out.
        status, headers, body = fetch(url + "?download")
        assert status.startswith("HTTP/1.1 200") and body.startswith(b"PK")
        assert_no_leak(status, headers, body, "whole tree")
        status, headers, body = fetch(url)
        assert_no_leak(status, headers, body, "root page")
    print(f"standalone app: {tried} path attacks, 0 leaks")


def test_manifest_roots_leak_nothing(root: Path) -> None:
    """Each attack becomes a manifest location under the ``/files/`` root."""

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        location = "/files/" + environ["QUERY_STRING"]
        start_response("200 OK", [("X-Archive-Files", "zip")])
        return [f"- {len(SECRET)} {location} out.txt\n".encode()]

    tried = 0
    with thread_server(ZipMiddleware(app, roots={"/files/": str(root)})) as url:
        for attack in ATTACKS:
            if len(attack) > 70000:
                continue
            status, headers, body = fetch(url + "dl?" + attack)
            tried += 1
            assert not status.startswith("HTTP/1.1 200"), attack[:80]
            assert_no_leak(status, headers, body, attack[:80])
        # And through the URL itself (the sub-request path for locations outside roots).
        for attack in ATTACKS[:20]:
            status, headers, body = fetch(url + "files/" + attack)
            tried += 1
            assert_no_leak(status, headers, body, attack)
    print(f"manifest roots: {tried} path attacks, 0 leaks")


def assert_no_injected_header(headers: bytes) -> None:
    """Text after a CR/LF in a name may stay inside a quoted value; it must not start a
    header (or a line) of its own."""
    lines = headers.split(b"\r\n")
    names = {line.split(b":", 1)[0].strip().lower() for line in lines[1:] if line}
    assert not names & {b"set-cookie", b"x-injected", b"z"}, headers
    for line in lines:
        assert b"\r" not in line and b"\n" not in line, headers


@pytest.mark.parametrize("name", ["a\r\nSet-Cookie: evil=1", "b\nX-Injected: 1", "c\rZ: 1"])
def test_cr_lf_in_names_never_reaches_a_header(root: Path, name: str) -> None:
    folder = root / name
    folder.mkdir()
    (folder / "f.txt").write_bytes(b"x")

    def manifest_app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("X-Archive-Files", "zip")])
        return [b"- 6 /files/README.txt README.txt\n"]

    with thread_server(ZipApp(root)) as url:
        encoded = quote(name)
        for target in (url + encoded + "/?download", url + encoded + ".zip",
                       url + "?path=" + quote(name, safe="")):
            status, headers, body = fetch(target)
            assert_no_injected_header(headers)
    with thread_server(ZipMiddleware(manifest_app, roots={"/files/": str(root)})) as url:
        status, headers, body = fetch(url + quote(name, safe=""))
        assert_no_injected_header(headers)
