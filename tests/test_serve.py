"""``zipwsgi serve`` exposure and limits: loopback by default, a warning on any other
address, HTTP Basic authentication (flag, file or environment), ``--threads``, and a
server that keeps answering beside slow readers, half-open and stalled connections."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from servers import SlowReaders, fd_count, half_open, time_to_answer, zipwsgi_serve
from webtest import TestApp

from zipwsgi import ZipApp, cli
from zipwsgi.app.auth import BasicAuth, parse_credentials
from zipwsgi.serve import ServeSettings, create_server

PASSWORD = "pa:ss-7f3e91"  # a colon inside: only the first one ends the user name


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture()
def share(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_bytes(b"A" * 1000)
    (root / "small.txt").write_bytes(b"hello\n")
    with open(root / "big.bin", "wb") as f:
        f.truncate(1 << 30)  # sparse: a download that outlasts any slow reader
    return root


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=60)


# --- Basic authentication, in-process -------------------------------------------------


def test_basic_auth_lets_only_the_right_credentials_through(share: Path) -> None:
    app = TestApp(BasicAuth(ZipApp(share), "alice", PASSWORD, realm="share"))
    refused = app.get("/docs.zip", status=401)
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="share", charset="UTF-8"'
    assert not refused.body.startswith(b"PK") and PASSWORD.encode() not in refused.body
    for header in (basic("alice", "wrong"), basic("bob", PASSWORD), basic("alice", PASSWORD[:-1]),
                   "Basic !!!notbase64", "Bearer abc", basic("alice", PASSWORD) + "x", "Basic"):
        app.get("/docs.zip", headers={"Authorization": header}, status=401)
    good = app.get("/docs.zip", headers={"Authorization": basic("alice", PASSWORD)})
    assert good.body.startswith(b"PK")
    head = app.head("/docs.zip", status=401)
    assert head.body == b""


def test_credentials_are_parsed_without_echoing_them() -> None:
    assert parse_credentials("alice:" + PASSWORD + "\n") == ("alice", PASSWORD)
    for bad in ("alice", ":secret", "alice:", ""):
        with pytest.raises(ValueError) as caught:
            parse_credentials(bad)
        assert bad not in str(caught.value) or not bad


# --- the command line --------------------------------------------------------------


def test_serve_warns_when_listening_beyond_loopback(share: Path) -> None:
    with zipwsgi_serve(share) as server:
        assert server.url.startswith("http://127.0.0.1:")
        time.sleep(0.2)
        assert "warning" not in "".join(server.errors)  # type: ignore[attr-defined]
    with zipwsgi_serve(share, "--host", "0.0.0.0") as server:
        time.sleep(0.2)
        errors = "".join(server.errors)  # type: ignore[attr-defined]
    assert f"warning: listening on 0.0.0.0: everything under {share}" in errors
    assert "anyone" in errors and "--auth" in errors


@pytest.mark.parametrize("how", ["flag", "file", "env"])
def test_serve_with_auth_over_http(share: Path, tmp_path: Path, how: str) -> None:
    args: list[str] = []
    env: dict[str, str] = {}
    if how == "flag":
        args = ["--auth", f"alice:{PASSWORD}"]
    elif how == "file":
        secret = tmp_path / "auth"
        secret.write_text(f"alice:{PASSWORD}\n")
        args = ["--auth-file", str(secret)]
    else:
        env = {"ZIPWSGI_AUTH": f"alice:{PASSWORD}"}
    with zipwsgi_serve(share, "--host", "0.0.0.0", *args, env=env) as server:
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        refused = curl("-D", "-", "-o", "/dev/null", url + "docs.zip").stdout.decode()
        assert refused.startswith("HTTP/1.1 401")
        assert 'www-authenticate: basic realm="share"' in refused.lower()
        wrong = curl("-u", "alice:nope", "-o", "/dev/null", "-w", "%{http_code}", url)
        assert wrong.stdout == b"401"
        body = curl("-u", f"alice:{PASSWORD}", url + "docs.zip").stdout
        assert body.startswith(b"PK")
        printed = "".join(server.output + server.errors)  # type: ignore[attr-defined]
    assert "alice" in printed and PASSWORD not in printed and "pa:ss" not in printed
    assert "readable only to those with the --auth password" in printed


def test_serve_refuses_malformed_credentials(
    share: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", str(share), "--auth", "nocolon-secret"]) == 2
    err = capsys.readouterr().err
    assert "USER:PASSWORD" in err and "nocolon-secret" not in err
    assert cli.main(["serve", str(share), "--threads", "0"]) == 2


def test_threads_reach_waitress(share: Path) -> None:
    with zipwsgi_serve(share, "--threads", "3") as server:
        time.sleep(0.3)
        with open(f"/proc/{server.pid}/status") as f:
            threads = int(next(line for line in f if line.startswith("Threads:")).split()[1])
    assert 4 <= threads <= 6  # three workers, the main loop, perhaps a reader


# --- limits ------------------------------------------------------------------------


@pytest.fixture()
def short_timeouts(share: Path) -> Iterator[tuple[str, list[str]]]:
    """ZipApp on zipwsgi.serve's server, in a thread, with 2 s timeouts; yields
    (url, events) where events records each body closed."""
    from waitress import wasyncore

    events: list[str] = []
    inner = ZipApp(share)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        body = inner(environ, start_response)

        class Closing:
            def __iter__(self):  # type: ignore[no-untyped-def]
                return iter(body)

            def close(self) -> None:
                events.append("closed " + environ["PATH_INFO"])
                getattr(body, "close", lambda: None)()

        return Closing()

    settings = ServeSettings(threads=2, channel_timeout=2, cleanup_interval=1)
    server = create_server(app, "127.0.0.1", 0, settings)
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.is_set():
                wasyncore.loop(timeout=0.05, map=server._map, count=1, use_poll=True)
        finally:
            wasyncore.close_all(server._map)
            server.task_dispatcher.shutdown()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}/", events
    finally:
        stop.set()
        thread.join(10)


def test_a_client_that_stops_reading_is_cut_and_frees_its_thread(
    short_timeouts: tuple[str, list[str]],
) -> None:
    url, events = short_timeouts
    address = urlsplit(url)
    stalled = []
    for _ in range(2):  # as many as there are threads
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((address.hostname, address.port))
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        stalled.append(sock)
    try:
        time.sleep(0.5)
        assert time_to_answer(url + "small.txt", timeout=0.5) == float("inf")  # pinned
        deadline = time.monotonic() + 10
        while events.count("closed /big.bin") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert events.count("closed /big.bin") == 2, events
        assert time_to_answer(url + "small.txt", timeout=2) < 1
    finally:
        for sock in stalled:
            sock.close()


def test_idle_and_half_open_connections_are_closed(short_timeouts: tuple[str, list[str]]) -> None:
    url, _ = short_timeouts
    with half_open(url, 5) as sockets:
        time.sleep(4.5)  # channel_timeout 2 s, checked every second
        for sock in sockets:
            sock.settimeout(1)
            assert sock.recv(100) == b""  # closed by the server


def test_settings_memory_bound_is_documented() -> None:
    settings = ServeSettings()
    assert settings.memory_bound() == 128 * 768 * 1024  # the figure in the README
    assert settings.outbuf_high_watermark + 256 * 1024 < settings.outbuf_overflow
    assert settings.file_memory_bound() == 1000 * 256 * 1024  # archives sent as files
    assert settings.fds_needed() >= 2 * settings.connection_limit + settings.threads


def test_stalled_archive_downloads_hold_no_thread_and_are_closed(share: Path) -> None:
    """Sized archives go to waitress as files (zipwsgi.http.filelike): clients that stop
    reading them pin no thread, and waitress's idle check closes them and their files."""
    from waitress import wasyncore

    large = share / "large"
    large.mkdir()
    with open(large / "part.bin", "wb") as f:
        f.truncate(1 << 30)  # sparse
    settings = ServeSettings(threads=2, channel_timeout=2, cleanup_interval=1)
    server = create_server(ZipApp(share), "127.0.0.1", 0, settings)
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.is_set():
                wasyncore.loop(timeout=0.05, map=server._map, count=1, use_poll=True)
        finally:
            wasyncore.close_all(server._map)
            server.task_dispatcher.shutdown()

    def open_parts() -> int:
        return sum(os.path.realpath(f"/proc/self/fd/{fd}") == str(large / "part.bin")
                   for fd in os.listdir("/proc/self/fd"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    port = int(server.effective_port)
    url = f"http://127.0.0.1:{port}/"
    stalled: list[socket.socket] = []
    try:
        for _ in range(3):  # more than there are threads
            sock = socket.socket()
            stalled.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /large.zip HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
        assert open_parts() == 3
        assert time_to_answer(url + "small.txt", timeout=10) != float("inf")  # not pinned
        deadline = time.monotonic() + 15
        while open_parts() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_parts() == 0  # closed by the idle check, files and all
        for sock in stalled:
            sock.settimeout(5)
            while sock.recv(1 << 16):
                pass  # what was in flight, then the end
    finally:
        for sock in stalled:
            sock.close()
        stop.set()
        thread.join(10)


@pytest.mark.slow
def test_answers_within_a_second_beside_100_slow_readers_and_200_half_open(share: Path) -> None:
    """Issue #16 item 7: the default server kept nothing for a normal client."""
    with zipwsgi_serve(share) as server, SlowReaders(
        server.url, "/big.bin", 100, 10_000
    ) as slow, half_open(server.url, 200):
        time.sleep(2)
        times = [time_to_answer(server.url + "small.txt", timeout=5) for _ in range(5)]
        fds = fd_count(server.pid)
        got = sum(slow.received)
    print(f"normal client beside 100 slow + 200 half-open: {max(times):.3f} s; "
          f"server fds {fds}; slow readers got {got} B")
    assert max(times) < 1, times
    assert fds >= 300  # every connection was really open at once
