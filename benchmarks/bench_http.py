"""HTTP benchmark: the same archive downloaded through waitress from zipwsgi and zipstream-ng.

Why this exists: ``bench.py`` times archive generation alone; a user sees it through a
WSGI server, socket buffers and a client. Here each implementation is served by its own
waitress process on a random 127.0.0.1 port and downloaded with curl, alternating between
servers, so the ratio includes everything a real download pays for. A third server sends
the raw input file through ``wsgi.file_wrapper``: the ceiling for this server and client.

Usage::

    python benchmarks/bench_http.py                     # default cases, 3 downloads each
    python benchmarks/bench_http.py --quick             # small data, 1 download, verified
    python benchmarks/bench_http.py --cases big-stored --requests 5 --markdown

Loopback only. The number of requests is bounded, every server is stopped when its case
is done, and each server also exits by itself after ``--server-lifetime`` seconds in case
this script is killed. zipwsgi is served through ``zipwsgi.ZipMiddleware`` when that
exists and as a raw ``ZipStream`` iterable until then; it is skipped while
``zipwsgi.ZipStream`` cannot be imported. Input data is shared with ``bench.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading

import bench

CURL_FORMAT = "%{http_code} %{size_download} %{time_total}"


# --------------------------------------------------------------------------------------
# The WSGI applications (built inside the server process)
# --------------------------------------------------------------------------------------


def zip_response(start_response, iterable, size):
    """Start a 200 zip response, with a Content-Length when the size is known."""
    headers = [("Content-Type", "application/zip")]
    if size is not None:
        headers.append(("Content-Length", str(size)))
    start_response("200 OK", headers)
    return iterable


class Unsized:
    """The same body minus ``__len__``, for archives whose size is unknown.

    waitress calls ``len(app_iter)`` when there is no Content-Length and does not expect
    the TypeError that an unsized ZipStream (zipwsgi's or zipstream-ng's) raises, so the
    response would be a 500. Iteration goes straight to the wrapped object (no per-chunk
    cost) and ``close()`` is passed on.
    """

    __slots__ = ("iterable",)

    def __init__(self, iterable) -> None:
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def close(self) -> None:
        close = getattr(self.iterable, "close", None)
        if close is not None:
            close()


def archive_body(zs, size):
    return zs if size is not None else Unsized(zs)


def zipwsgi_app(case: bench.Case):
    """A WSGI app returning a zipwsgi ZipStream; wrapped in ZipMiddleware once it exists.

    Returns (app, how it is served) so the report says which path was measured.
    """
    probe = bench.build_zipwsgi(case)  # an ImportError here means "skipped"
    sized = probe.size is not None
    probe.close()

    def app(environ, start_response):
        zs = bench.build_zipwsgi(case)
        size = zs.size
        return zip_response(start_response, archive_body(zs, size), size)

    def marked_app(environ, start_response):
        # ZipMiddleware recognises a body that *is* a ZipStream and answers the request
        # itself (Content-Length, Range, ETag), so nothing may be wrapped around it.
        zs = bench.build_zipwsgi(case)
        return zip_response(start_response, zs, zs.size)

    try:
        from zipwsgi import ZipMiddleware
    except ImportError:
        return app, "raw ZipStream iterable" + ("" if sized else " (len() hidden)")
    return ZipMiddleware(marked_app), "ZipMiddleware"


def zipstream_ng_app(case: bench.Case):
    """zipstream-ng as its README serves it: the ZipStream is the body, len() its size."""

    def app(environ, start_response):
        zs = bench.build_zipstream_ng(case)
        size = len(zs) if zs.sized else None
        return zip_response(start_response, archive_body(zs, size), size)

    sized = case.compression == "stored"
    return app, "ZipStream iterable" + ("" if sized else " (len() hidden)")


def file_app(case: bench.Case):
    """The input file itself through ``wsgi.file_wrapper``: no zip work at all."""
    path = case.dataset.path

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(os.path.getsize(path)))])
        return environ["wsgi.file_wrapper"](open(path, "rb"), bench.LIMIT_READ_SIZE)

    return app, "wsgi.file_wrapper"


APPS = {
    "zipwsgi": ("archiver", zipwsgi_app, lambda case: True),
    "zipstream-ng": ("archiver", zipstream_ng_app, lambda case: True),
    "file": ("limit", file_app, lambda case: not case.dataset.is_tree),
}


# --------------------------------------------------------------------------------------
# Server side: one waitress process per implementation
# --------------------------------------------------------------------------------------


def serve_main(args: argparse.Namespace) -> int:
    """Serve one app on a random loopback port; announce the port as a JSON line."""
    import waitress

    case_name, impl_name = args.serve
    case = bench.all_cases(args.quick)[case_name]
    bench.use_work_tree()
    try:
        app, how = APPS[impl_name][1](case)
    except ImportError as exc:
        print(json.dumps({"skipped": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 0
    server = waitress.create_server(app, host="127.0.0.1", port=0)
    # Exit on our own even if the parent dies without stopping us.
    watchdog = threading.Timer(args.server_lifetime, os._exit, args=(0,))
    watchdog.daemon = True
    watchdog.start()
    print(json.dumps({"port": server.effective_port, "how": how}), flush=True)
    server.run()
    return 0


class Server:
    """A waitress child process serving one implementation until ``stop()``."""

    def __init__(self, case: bench.Case, impl: str, quick: bool, lifetime: int) -> None:
        command = [sys.executable, os.path.abspath(__file__), "--serve", case.name, impl,
                   "--server-lifetime", str(lifetime)]
        if quick:
            command.append("--quick")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        self.info = json.loads(line) if line else {"error": "server did not start"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}/"

    def peak_rss_kib(self) -> int | None:
        """The server's VmHWM, read while it is still alive."""
        try:
            with open(f"/proc/{self.process.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def curl(url: str, timeout: int, output: str = os.devnull) -> dict:
    """Download once, discarding the body; return curl's own size and timing."""
    proc = subprocess.run(
        ["curl", "-s", "-o", output, "--max-time", str(timeout), "-w", CURL_FORMAT, url],
        stdout=subprocess.PIPE, text=True,
    )
    code, size, seconds = proc.stdout.split()
    if proc.returncode != 0 or code != "200":
        return {"error": f"curl exit {proc.returncode}, HTTP {code}"}
    return {"seconds": float(seconds), "output_bytes": int(size)}


# --------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------


def bench_case(case: bench.Case, impls: list[str], args: argparse.Namespace) -> list[bench.Row]:
    """Start one server per implementation, then download in rotating order."""
    rows = {
        name: bench.Row(bench.Impl(name, APPS[name][0], run=None), []) for name in impls
    }
    servers = {}
    try:
        for name in impls:
            server = Server(case, name, args.quick, args.server_lifetime)
            servers[name] = server
            if "port" not in server.info:
                rows[name].note = _note(server.info)
            else:
                print(f"  {name:<14} serving as {server.info['how']} on {server.url}",
                      flush=True)
        active = [name for name in impls if "port" in servers[name].info]
        if args.verify:
            verify_downloads(case, {name: servers[name] for name in active}, args.timeout)
        for index in range(args.requests):
            shift = index % len(active) if active else 0
            for name in active[shift:] + active[:shift]:
                report = curl(servers[name].url, args.timeout)
                print(f"  request {index + 1}/{args.requests} {name:<14} "
                      f"{bench.progress_text(report)}", flush=True)
                if "error" in report:
                    rows[name].note = "error: " + report["error"]
                else:
                    rows[name].reports.append(report)
        for name in active:
            rss = servers[name].peak_rss_kib()
            for report in rows[name].reports:
                report["maxrss_kib"] = rss
    finally:
        for server in servers.values():
            server.stop()
    return list(rows.values())


def verify_downloads(case: bench.Case, servers: dict[str, Server], timeout: int) -> None:
    """Download each archive once to a temporary file and check it with ``zipfile``."""
    with tempfile.TemporaryDirectory(prefix="zipwsgi-bench-http-") as tmp:
        path = os.path.join(tmp, "download")
        for name, server in servers.items():
            report = curl(server.url, timeout, output=path)
            if "error" in report:
                verdict = report["error"]
            elif APPS[name][0] == "limit":
                verdict = "ok" if report["output_bytes"] == case.dataset.size else "wrong size"
            else:
                verdict = bench.check_archive(path, case, {})
            print(f"  verify {name:<14} {verdict}", flush=True)


def _note(info: dict) -> str:
    if "skipped" in info:
        return "skipped: " + info["skipped"]
    return "error: " + info.get("error", "?")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, 1 request each")
    parser.add_argument("--cases",
                        help=f"comma-separated, default {','.join(bench.DEFAULT_CASES)}")
    parser.add_argument("--impls", help=f"comma-separated subset of {', '.join(APPS)}")
    parser.add_argument("--requests", type=int, help="downloads per server (default 3)")
    parser.add_argument("--timeout", type=int, default=600, help="curl --max-time, seconds")
    parser.add_argument("--server-lifetime", type=int, default=1800,
                        help="a server exits by itself after this many seconds")
    parser.add_argument("--verify", action="store_true",
                        help="first download each archive to a file and check it (on in --quick)")
    parser.add_argument("--markdown", action="store_true", help="print a README-ready table")
    parser.add_argument("--serve", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve_main(args)
    cases = bench.all_cases(args.quick)
    case_names = bench.select_names(args.cases, bench.DEFAULT_CASES, cases, "case")
    impl_names = bench.select_names(args.impls, list(APPS), APPS, "implementation")
    if args.requests is None:
        args.requests = 1 if args.quick else 3
    args.verify = args.verify or args.quick
    print(f"machine: {bench.machine_description()}\nlibraries: {bench.library_versions()}",
          flush=True)
    results = []
    for name in case_names:
        case = cases[name]
        impls = [impl for impl in impl_names if APPS[impl][2](case)]
        print(f"\n[{case.name}] {case.dataset.describe()}, {case.compression}", flush=True)
        bench.ensure_dataset(case.dataset)
        bench.warm_page_cache(case.dataset)
        rows = bench_case(case, impls, args)
        bench.print_table(case, rows, args.requests, unit="download")
        results.append((case, rows))
    if args.markdown:
        print(f"### HTTP benchmark\n\nMeasured on {bench.machine_description()}; "
              f"{bench.library_versions()}.\nwaitress with default settings on 127.0.0.1, "
              f"curl to /dev/null, median of {args.requests} download(s); MB/s = input "
              "bytes / curl's time_total; peak RSS is the server process's.\n")
        bench.print_markdown_tables(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
