"""Issue #11, slow clients and load (marked slow; loopback only; timing printed, never
asserted except "a normal client is not stalled"): 20 clients at 100 KB/s beside a normal
download; 16 concurrent downloads of a 200 MiB archive under ``zipwsgi serve``, waitress
(8 threads) and gunicorn (gthread, 2 workers x 4 threads), byte-identical to a reference,
with peak server RSS; a download cut halfway and resumed against another process."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import SlowReaders, peak_rss_kib, stop_process, zipwsgi_serve

from zipwsgi import ZipStream

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
    pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc"),
]

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CLIENTS = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A folder of about 200 MiB (random heads, sparse bodies: cheap from the page
    cache) and the reference archive ``zipwsgi serve`` gives for ``/?download``."""
    base = tmp_path_factory.mktemp("load")
    folder = base / "data"
    folder.mkdir()
    for n in range(4):
        with open(folder / f"part{n}.bin", "wb") as f:
            f.write(os.urandom(1 << 20))
            f.truncate(50 << 20)
    (folder / "notes.txt").write_bytes(os.urandom(300_000))
    reference = base / "reference.zip"
    stream = ZipStream()
    stream.add_path(str(folder), "data")
    with open(reference, "wb") as out:
        for chunk in stream:
            out.write(chunk)
    return folder, reference


def fetch_and_compare(url: str, reference: Path, clients: int) -> list[str]:
    """``clients`` curls at once, each piped into ``cmp`` against the reference."""
    script = f'curl -sS --fail "{url}" | cmp - "{reference}"'
    procs = [subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) for _ in range(clients)]
    failures = []
    for proc in procs:
        out, _ = proc.communicate(timeout=150)
        if proc.returncode != 0:
            failures.append(out.decode(errors="replace"))
    return failures


@contextlib.contextmanager
def process_server(command: list[str], env: dict[str, str]) -> Iterator[tuple[str, int]]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, **env}, cwd=TESTS)
    output: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if re.search(r"(Listening at|Serving on): ?http://", line):
                found.set()
        found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        found.wait(30)
        match = re.search(r"http://[\d.]+:\d+", "".join(output))
        assert match, "".join(output)
        yield match.group(0) + "/", process.pid
    finally:
        stop_process(process, reader)


def family_peak_rss_mib(pid: int) -> float:
    """Peak RSS of ``pid`` plus its children (gunicorn's workers), in MiB."""
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
    return sum(peak_rss_kib(p) for p in pids) / 1024


def run_load(name: str, url: str, pid: int, reference: Path) -> None:
    start = time.monotonic()
    failures = fetch_and_compare(url, reference, CLIENTS)
    seconds = time.monotonic() - start
    total = CLIENTS * reference.stat().st_size
    print(f"{name}: {CLIENTS} x {reference.stat().st_size / 2**20:.0f} MiB in {seconds:.1f} s "
          f"({total / seconds / 1e6:.0f} MB/s aggregate), peak RSS "
          f"{family_peak_rss_mib(pid):.0f} MiB, {len(failures)} mismatches")
    assert not failures, failures[:2]


def test_16_downloads_under_zipwsgi_serve(data: tuple[Path, Path]) -> None:
    folder, reference = data
    with zipwsgi_serve(folder) as server:
        run_load("zipwsgi serve", server.url + "?download", server.pid, reference)


def test_16_downloads_under_waitress_8_threads(data: tuple[Path, Path]) -> None:
    folder, reference = data
    env = {"ZIPWSGI_LOAD_FILES": str(folder), "PYTHONPATH": str(ROOT)}
    with process_server([sys.executable, "load_app.py", "8"], env) as (url, pid):
        run_load("waitress, 8 threads", url + "all.zip", pid, _renamed(reference, folder))


def test_16_downloads_under_gunicorn_gthread(data: tuple[Path, Path]) -> None:
    pytest.importorskip("gunicorn")
    folder, reference = data
    env = {"ZIPWSGI_LOAD_FILES": str(folder), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "2", "--threads", "4",
               "-b", "127.0.0.1:0", "load_app:application"]
    with process_server(command, env) as (url, pid):
        run_load("gunicorn gthread 2x4", url + "all.zip", pid, _renamed(reference, folder))


def _renamed(reference: Path, folder: Path) -> Path:
    """The reference for the middleware: the same files at the top of the archive."""
    target = reference.with_name("reference-flat.zip")
    if not target.exists():
        stream = ZipStream()
        for name in sorted(os.listdir(folder)):
            stream.add_path(str(folder / name), name)
        with open(target, "wb") as out:
            for chunk in stream:
                out.write(chunk)
    return target


def test_slow_readers_do_not_stall_a_normal_download(data: tuple[Path, Path]) -> None:
    folder, reference = data
    with zipwsgi_serve(folder) as server, SlowReaders(
        server.url, "/?download", 20, 100_000
    ) as slow:
        time.sleep(1)
        start = time.monotonic()
        failures = fetch_and_compare(server.url + "?download", reference, 1)
        seconds = time.monotonic() - start
        got = sum(slow.received)
    print(f"normal 200 MiB download beside 20 readers at 100 KB/s: {seconds:.1f} s; "
          f"slow readers got {got / 1e6:.1f} MB")
    assert not failures
    assert seconds < 60


def test_a_cut_download_resumes_against_another_process(
    data: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, reference = data
    part = tmp_path / "download.zip"
    half = reference.stat().st_size // 2
    with zipwsgi_serve(folder) as first:
        subprocess.run(["curl", "-sS", "-r", f"0-{half - 1}", "-o", str(part),
                        first.url + "?download"], check=True, timeout=60)
    assert part.stat().st_size == half
    with zipwsgi_serve(folder) as second:
        result = subprocess.run(["curl", "-sS", "-C", "-", "-o", str(part), "-w", "%{http_code}",
                                 second.url + "?download"], capture_output=True, timeout=60)
    assert result.stdout == b"206", result.stderr
    assert subprocess.run(["cmp", str(part), str(reference)]).returncode == 0
