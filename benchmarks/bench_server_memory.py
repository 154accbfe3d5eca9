"""Server memory: RSS of a waitress process serving the same archive again and again.

Why this exists: a server lives for days. What matters is not one download's peak but
what the process keeps after many of them, and what concurrent downloads add. Two
waitress processes (4 threads each, the default) serve the same 10,000 small files on
loopback: zipwsgi through ``ZipMiddleware`` from a mod_zip manifest with ``-`` CRCs (one
``lstat`` per file before the first byte, CRCs computed while streaming), and a
zipstream-ng app (``ZipStream(sized=True).add_path``) as its README serves it. The
parent downloads with curl, alternating servers, and reads each server's VmRSS from
``/proc`` after every round:

* idle, after start-up (the app built, nothing served);
* after each of ``--rounds`` sequential downloads (default 20);
* after each of ``--bursts`` bursts of ``--concurrent`` simultaneous downloads (8).

``ZipMiddleware`` sets glibc's mmap and trim thresholds in its own process
(:mod:`zipwsgi.allocator`); ``--same-malloc`` starts both servers with those settings, to
show what remains once the allocator is the same. It prints the RSS table and the
ratios zipwsgi / zipstream-ng, and each server's growth
from its first download to its last ("flat after the first round" means small growth).

Usage::

    python benchmarks/bench_server_memory.py                 # 10,000 files, 20 + 2x8
    python benchmarks/bench_server_memory.py --quick         # 500 files, 4 + 1x8
    python benchmarks/bench_server_memory.py --trace         # servers log tracemalloc
                                                             # top allocations to stderr

Loopback only; bounded: a fixed number of downloads, each with a curl time-out, and each
server exits by itself after ``--server-lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import bench

CURL_FORMAT = "%{http_code} %{size_download} %{time_total}"
PREFIX = "/files/"


def manifest_lines(dataset: bench.Dataset) -> bytes:
    """One mod_zip line per file, ``-`` for the CRC, sizes and names as on disk."""
    lines = []
    for path, name in dataset.files():
        rel = os.path.relpath(path, dataset.path).replace(os.sep, "/")
        lines.append(f"- {os.path.getsize(path)} {PREFIX}{rel} {name}\n")
    return "".join(lines).encode()


def manifest_path(dataset: bench.Dataset) -> str:
    return os.path.join(bench.DATA_DIR, dataset.name + ".manifest")


def write_manifest(dataset: bench.Dataset) -> None:
    """Written by the parent, so the server's RSS does not include walking the tree."""
    data = manifest_lines(dataset)
    path = manifest_path(dataset)
    with open(path + ".partial", "wb") as f:
        f.write(data)
    os.replace(path + ".partial", path)


# --------------------------------------------------------------------------------------
# Server side
# --------------------------------------------------------------------------------------


def zipwsgi_app(dataset: bench.Dataset):
    from zipwsgi import ZipMiddleware

    with open(manifest_path(dataset), "rb") as f:  # written by the parent
        manifest = f.read()

    def app(environ, start_response):
        start_response("200 OK", [("X-Archive-Files", "zip"),
                                  ("Content-Type", "text/plain"),
                                  ("Content-Disposition", "attachment; filename=all.zip")])
        return [manifest]

    return ZipMiddleware(app, roots={PREFIX: dataset.path})


def zipstream_ng_app(dataset: bench.Dataset):
    import zipstream

    def app(environ, start_response):
        zs = zipstream.ZipStream(compress_type=zipstream.ZIP_STORED, sized=True)
        zs.add_path(dataset.path, dataset.name)
        start_response("200 OK", [("Content-Type", "application/zip"),
                                  ("Content-Length", str(len(zs)))])
        return zs

    return app


APPS = {"zipwsgi": zipwsgi_app, "zipstream-ng": zipstream_ng_app}


def trace_on_signal() -> None:
    """On SIGUSR1, print the top tracemalloc lines and the diff since the last signal."""
    import signal
    import tracemalloc

    tracemalloc.start(8)
    state = {"last": tracemalloc.take_snapshot()}

    def dump(signum, frame):
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        current, peak = tracemalloc.get_traced_memory()
        print(f"--- tracemalloc: current {current / 2**20:.1f} MiB, peak "
              f"{peak / 2**20:.1f} MiB", file=sys.stderr)
        for stat in snap.statistics("lineno")[:12]:
            print(f"  {stat}", file=sys.stderr)
        print("  growth since last dump:", file=sys.stderr)
        for stat in snap.compare_to(state["last"], "lineno")[:8]:
            print(f"  {stat}", file=sys.stderr)
        state["last"] = snap
        sys.stderr.flush()

    signal.signal(signal.SIGUSR1, dump)


def serve_main(args: argparse.Namespace) -> int:
    import waitress

    bench.use_work_tree()
    dataset = bench.all_cases(args.quick)["small10k-stored"].dataset
    if args.trace:
        trace_on_signal()
    app = APPS[args.serve](dataset)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=args.threads)
    watchdog = threading.Timer(args.server_lifetime, os._exit, args=(0,))
    watchdog.daemon = True
    watchdog.start()
    print(json.dumps({"port": server.effective_port}), flush=True)
    server.run()
    return 0


# --------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------


class Server:
    def __init__(self, impl: str, args: argparse.Namespace) -> None:
        command = [sys.executable, os.path.abspath(__file__), "--serve", impl,
                   "--threads", str(args.threads),
                   "--server-lifetime", str(args.server_lifetime)]
        command += ["--quick"] if args.quick else []
        command += ["--trace"] if args.trace else []
        env = dict(os.environ)
        if args.same_malloc:  # what zipwsgi.allocator sets, for both servers
            from zipwsgi.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD

            env.update(MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD),
                       MALLOC_TRIM_THRESHOLD_=str(TRIM_THRESHOLD))
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        self.info = json.loads(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.info['port']}/all.zip"

    def status_kib(self, field: str) -> int:
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def dump_trace(self) -> None:
        import signal

        os.kill(self.process.pid, signal.SIGUSR1)
        time.sleep(1.0)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def curl_many(url: str, count: int, timeout: int) -> list[str]:
    """``count`` simultaneous downloads; returns the problems (empty when all were whole)."""
    procs = [subprocess.Popen(["curl", "-s", "-o", os.devnull, "--max-time", str(timeout),
                               "-w", CURL_FORMAT, url], stdout=subprocess.PIPE, text=True)
             for _ in range(count)]
    problems = []
    for proc in procs:
        out, _ = proc.communicate()
        code = out.split()[0] if out else "?"
        if proc.returncode != 0 or code != "200":
            problems.append(f"curl exit {proc.returncode}, HTTP {code}")
    return problems


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 files, 4 rounds, 1 burst")
    parser.add_argument("--rounds", type=int, help="sequential downloads (default 20)")
    parser.add_argument("--bursts", type=int, help="bursts of concurrent downloads (2)")
    parser.add_argument("--concurrent", type=int, default=8, help="downloads per burst")
    parser.add_argument("--threads", type=int, default=4, help="waitress threads")
    parser.add_argument("--timeout", type=int, default=300, help="curl --max-time, seconds")
    parser.add_argument("--server-lifetime", type=int, default=1800)
    parser.add_argument("--trace", action="store_true",
                        help="servers print tracemalloc top lines to stderr after each step")
    parser.add_argument("--same-malloc", action="store_true",
                        help="start both servers with the glibc thresholds zipwsgi sets "
                             "for itself (a control: the same allocator for both)")
    parser.add_argument("--serve", choices=list(APPS), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve_main(args)
    rounds = args.rounds if args.rounds is not None else (4 if args.quick else 20)
    bursts = args.bursts if args.bursts is not None else (1 if args.quick else 2)
    dataset = bench.all_cases(args.quick)["small10k-stored"].dataset
    print(f"machine: {bench.machine_description()}\nlibraries: {bench.library_versions()}\n"
          f"{dataset.describe()}; waitress threads={args.threads}", flush=True)
    bench.ensure_dataset(dataset)
    bench.warm_page_cache(dataset)
    write_manifest(dataset)

    bench.use_work_tree()
    servers = {name: Server(name, args) for name in APPS}
    table: list[tuple[str, dict[str, int]]] = []

    def record(label: str) -> None:
        time.sleep(0.5)  # let each server finish closing the last response
        row = {name: s.status_kib("VmRSS") for name, s in servers.items()}
        table.append((label, row))
        print(f"  {label:<22} " + "  ".join(f"{n} {kib / 1024:6.1f} MiB"
                                             for n, kib in row.items()), flush=True)
        if args.trace:
            for s in servers.values():
                s.dump_trace()

    try:
        record("idle")
        for index in range(rounds):
            order = list(servers) if index % 2 == 0 else list(reversed(servers))
            for name in order:
                problems = curl_many(servers[name].url, 1, args.timeout)
                if problems:
                    raise SystemExit(f"{name}: {problems}")
            record(f"download {index + 1}")
        for index in range(bursts):
            for name, server in servers.items():
                problems = curl_many(server.url, args.concurrent, args.timeout)
                if problems:
                    raise SystemExit(f"{name}: {problems}")
            record(f"{args.concurrent} concurrent #{index + 1}")
        peaks = {name: s.status_kib("VmHWM") for name, s in servers.items()}
    finally:
        for server in servers.values():
            server.stop()

    names = list(APPS)
    print(f"\n| after | {' | '.join(names)} | zipwsgi / zipstream-ng |\n|---|"
          + "---:|" * (len(names) + 1))
    for label, row in table:
        ratio = row["zipwsgi"] / row["zipstream-ng"]
        print(f"| {label} | " + " | ".join(f"{row[n] / 1024:.1f} MiB" for n in names)
              + f" | {ratio:.2f}x |")
    ratio = peaks["zipwsgi"] / peaks["zipstream-ng"]
    print("| peak (VmHWM) | " + " | ".join(f"{peaks[n] / 1024:.1f} MiB" for n in names)
          + f" | {ratio:.2f}x |")
    first = dict(table[1][1])
    last = dict(table[-1][1])
    print("\ngrowth from the first download to the end: " + ", ".join(
        f"{n} {(last[n] - first[n]) / 1024:+.1f} MiB" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
