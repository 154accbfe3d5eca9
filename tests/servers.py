"""Real waitress servers for tests: in a thread of this process, or in a subprocess.

- :func:`thread_server` runs a WSGI app on 127.0.0.1 with a free port in a background
  thread. The server shares this process, so a test can look at ``/proc/self/fd`` to
  see which files the app holds open.
- :func:`example_server` runs one of ``examples/*_app.py`` as its own process (exactly
  as a user would start it, with ``--port 0``) and waits for its "Serving on" line.

Both are context managers yielding the base URL (``http://127.0.0.1:PORT/``) and stop
the server on exit, also when the test fails. :func:`open_with_readers` tests a
downloaded archive with the real readers installed. (A helper, not a test module.)
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from waitress.server import create_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@contextlib.contextmanager
def thread_server(app, **adjustments) -> Iterator[str]:
    """Serve ``app`` with waitress in a daemon thread; yields the base URL."""
    adjustments.setdefault("threads", 4)
    server = create_server(app, host="127.0.0.1", port=0, **adjustments)
    thread = threading.Thread(target=_run_quietly, args=(server,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}/"
    finally:
        # As webtest's StopableWSGIServer: close every channel, then the task threads.
        while server._map:
            for channel in list(server._map.values()):
                channel.handle_close()
        server.maintenance(0)
        server.task_dispatcher.shutdown()
        thread.join(5)


def _run_quietly(server) -> None:
    try:
        server.run()
    except OSError:  # the map is torn down under the loop on shutdown
        pass


class ServerProcess:
    """A running example: its ``url``, ``pid``, and everything it printed (``output``)."""

    def __init__(self, process: subprocess.Popen, url: str, output: list[str]) -> None:
        self.process = process
        self.url = url
        self.pid = process.pid
        self.output = output


@contextlib.contextmanager
def example_server(
    name: str, files: os.PathLike[str] | str, *, timeout: float = 30
) -> Iterator[ServerProcess]:
    """Start ``examples/<name>.py --files FILES --port 0``; yields a :class:`ServerProcess`."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--files", str(files), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": path},
        text=True,
    )
    output: list[str] = []
    started = threading.Event()
    # Keep reading after the URL line, so a chatty server never blocks on a full pipe.
    reader = threading.Thread(target=_drain, args=(process, output, started), daemon=True)
    reader.start()
    try:
        started.wait(timeout)
        serving = [line for line in output if line.startswith("Serving on ")]
        if not serving:
            raise RuntimeError(f"{name} did not start; it printed:\n{''.join(output)}")
        yield ServerProcess(process, serving[0].split()[2], output)
    finally:
        stop_process(process, reader)


def stop_process(process: subprocess.Popen, reader: threading.Thread) -> None:
    """Stop a server process started by a test, and release its output pipe and reader."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a stuck server
        process.kill()
        process.wait()
    reader.join(5)
    if process.stdout is not None:
        process.stdout.close()


def _drain(process: subprocess.Popen, output: list[str], started: threading.Event) -> None:
    for line in process.stdout:  # type: ignore[union-attr]
        output.append(line)
        if line.startswith("Serving on "):
            started.set()
    started.set()  # the process ended: wake the waiter, which reports the output


# --- real readers for downloaded archives ----------------------------------------------

# Java reads twice: through the central directory (ZipFile, as jar tools and most Java
# apps do) and, when asked, as a stream (ZipInputStream, which refuses STORED entries
# whose CRC came in a data descriptor, i.e. manifest lines with '-' for the CRC).
_JAVA_SOURCE = """
import java.util.Enumeration; import java.util.zip.*; import java.io.*;
public class ReadZip { public static void main(String[] a) throws Exception {
  byte[] b = new byte[65536]; long total = 0; int r;
  try (ZipFile z = new ZipFile(a[0])) {
    for (Enumeration<? extends ZipEntry> en = z.entries(); en.hasMoreElements();) {
      try (InputStream in = z.getInputStream(en.nextElement())) {
        while ((r = in.read(b)) > 0) total += r; } } }
  System.out.println("ZipFile " + total);
  if (a.length > 1) { total = 0;
    try (ZipInputStream z = new ZipInputStream(new FileInputStream(a[0]))) {
      while (z.getNextEntry() != null) { while ((r = z.read(b)) > 0) total += r; } }
    System.out.println("ZipInputStream " + total); } } }
"""


def _java_classes(cache: dict[str, str] = {}) -> str:  # noqa: B006 - a per-session cache
    if "dir" not in cache:
        folder = tempfile.mkdtemp(prefix="zipwsgi-readzip-")
        atexit.register(shutil.rmtree, folder, True)
        source = Path(folder) / "ReadZip.java"
        source.write_text(_JAVA_SOURCE)
        subprocess.run(["javac", "-d", folder, str(source)], check=True, capture_output=True)
        cache["dir"] = folder
    return cache["dir"]


def open_with_readers(path: os.PathLike[str] | str, *, java_stream: bool = False) -> None:
    """Test ``path`` with unzip, 7z, bsdtar and Java; AssertionError with their output."""
    path = os.fspath(path)
    commands = [
        ["unzip", "-tq", path],
        ["7z", "t", path],
        ["bsdtar", "-tf", path],
        ["bsdtar", "-xOf", path],
    ]
    if shutil.which("javac") and shutil.which("java"):
        command = ["java", "-cp", _java_classes(), "ReadZip", path]
        commands.append(command + ["stream"] if java_stream else command)
    for command in commands:
        if shutil.which(command[0]) is None:
            continue
        result = subprocess.run(command, capture_output=True, timeout=120)
        assert result.returncode == 0, (
            f"{' '.join(command)} exited {result.returncode}:\n"
            f"{result.stdout.decode(errors='replace')[-2000:]}"
            f"{result.stderr.decode(errors='replace')[-2000:]}"
        )


# --- `zipwsgi serve` as its own process, and clients that misbehave ----------------------

_URL_LINE = re.compile(r"(http://\S+?/)\s*$")


@contextlib.contextmanager
def zipwsgi_serve(
    root: os.PathLike[str] | str, *args: str, env: dict[str, str] | None = None,
    timeout: float = 30,
) -> Iterator[ServerProcess]:
    """Start ``zipwsgi serve ROOT --port 0 ARGS...``; yield a :class:`ServerProcess` once
    it prints its URL. Its stderr is kept apart in ``process.stderr_text()``."""
    command = [sys.executable, "-m", "zipwsgi", "serve", str(root), "--port", "0", *args]
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
    )
    output: list[str] = []
    errors: list[str] = []
    started = threading.Event()

    def read_out() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            output.append(line)
            if _URL_LINE.search(line):
                started.set()
        started.set()

    def read_err() -> None:
        for line in process.stderr:  # type: ignore[union-attr]
            errors.append(line)

    reader = threading.Thread(target=read_out, daemon=True)
    reader.start()
    err_reader = threading.Thread(target=read_err, daemon=True)
    err_reader.start()
    try:
        started.wait(timeout)
        urls = [m.group(1) for line in output if (m := _URL_LINE.search(line))]
        if not urls:
            process.terminate()
            process.wait(10)
            err_reader.join(5)
            raise RuntimeError(f"zipwsgi serve did not start:\n{''.join(output + errors)}")
        server = ServerProcess(process, urls[0], output)
        server.errors = errors  # type: ignore[attr-defined]
        yield server
    finally:
        stop_process(process, reader)
        err_reader.join(5)
        if process.stderr is not None:
            process.stderr.close()


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (VmRSS; VmHWM is the peak)."""
    return _status_field(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int:
    """Peak resident set size of process ``pid`` in KiB (VmHWM)."""
    return _status_field(pid, "VmHWM")


def _status_field(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def fd_count(pid: int) -> int:
    """How many file descriptors process ``pid`` holds (Linux /proc)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


class SlowReaders:
    """``count`` clients downloading ``path`` from ``url`` at ``rate`` bytes/s each.

    One thread drives every socket (small receive buffers, so the kernel does not soak up
    the download); ``received`` counts bytes per client. A context manager: the sockets
    close on exit.
    """

    def __init__(self, url: str, path: str, count: int, rate: int) -> None:
        address = urlsplit(url)
        self.address = (address.hostname, address.port)
        self.path, self.count, self.rate = path, count, rate
        self.received = [0] * count
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SlowReaders:
        request = f"GET {self.path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()
        for _ in range(self.count):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            sock.connect(self.address)
            sock.sendall(request)
            sock.setblocking(False)
            self._sockets.append(sock)
        self._thread.start()
        return self

    def _run(self) -> None:
        tick = 0.1
        budget = max(1, int(self.rate * tick))
        while not self._stop.wait(tick):
            for index, sock in enumerate(self._sockets):
                try:
                    data = sock.recv(budget)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                self.received[index] += len(data)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self._sockets:
            sock.close()


@contextlib.contextmanager
def half_open(url: str, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that send half a request line and then nothing."""
    address = urlsplit(url)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((address.hostname, address.port), timeout=5)
            sock.sendall(b"GET /half-open HTTP/1.1\r\nHost: te")
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def time_to_answer(url: str, timeout: float = 30) -> float:
    """Seconds until a plain GET of ``url`` has its whole (small) answer; ``inf`` if it
    has none within ``timeout``."""
    address = urlsplit(url)
    start = time.monotonic()
    try:
        with socket.create_connection((address.hostname, address.port), timeout=timeout) as s:
            s.settimeout(max(0.1, timeout - (time.monotonic() - start)))
            target = address.path + (f"?{address.query}" if address.query else "")
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return float("inf")
    return time.monotonic() - start if data.startswith(b"HTTP/1.1 200") else float("inf")
