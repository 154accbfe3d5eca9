"""HTTP benchmark: the same archive downloaded through waitress from zipwsgi and zipstream-ng.

Why this exists: ``bench.py`` times archive generation alone; a user sees it through a
WSGI server, socket buffers and a client. Here each implementation is served by its own
waitress process on a random 127.0.0.1 port and downloaded with curl, alternating between
servers, so the ratio includes everything a real download pays for. A third server sends
the raw input file through ``wsgi.file_wrapper``: the ceiling for this server and client.
zipwsgi hands a sized archive of local files to waitress the same way
(:mod:`zipwsgi.http.filelike`), so that row is its like-for-like limit; ``--zipwsgi-serve``
runs every waitress server with the settings of ``zipwsgi serve`` instead of waitress's.

Usage::

    python benchmarks/bench_http.py                     # default cases, 3 downloads each
    python benchmarks/bench_http.py --quick             # small data, 1 download, verified
    python benchmarks/bench_http.py --cases big-stored --requests 5 --markdown

**nginx mod_zip** joins as a contender when ``NGINX_BIN`` names an nginx built with
mod_zip (or the ``nginx`` on PATH shows ``mod_zip`` in ``nginx -V``; see mod_zip's own
build notes): the benchmark writes an ``nginx.conf`` into a temporary folder at run time
(one worker, ``sendfile on``, the data folder as an ``internal`` location, the manifest
proxied from a tiny loopback upstream) and downloads the same manifests from it and from
``ZipMiddleware`` (``zipwsgi-manifest``): stored cases only, with the CRCs given
(``-crc``) and with ``-`` (``-nocrc``). The time to first byte (curl's
``time_starttransfer``) and each server's own CPU time per download (from /proc: unlike
the wall time, not inflated by other load on the machine) are printed under each table.

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
import time

import bench

CURL_FORMAT = "%{http_code} %{size_download} %{time_total} %{time_starttransfer}"
MANIFEST_PREFIX = "/files/"


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


# --------------------------------------------------------------------------------------
# mod_zip manifests: the same files, listed for ZipMiddleware and for nginx mod_zip
# --------------------------------------------------------------------------------------


def manifest_path(case: bench.Case, with_crc: bool) -> str:
    return os.path.join(bench.DATA_DIR, f"{case.dataset.name}.manifest-"
                        + ("crc" if with_crc else "nocrc"))


def ensure_manifest(case: bench.Case, with_crc: bool) -> str:
    """Write (once) the manifest of the case's files: CRC (or ``-``), size, location, name."""
    path = manifest_path(case, with_crc)
    if os.path.exists(path):
        return path
    bench.use_work_tree()
    from zipwsgi.engine.compression import crc32

    lines = []
    for file_path, name in case.dataset.files():
        rel = os.path.relpath(file_path, bench.DATA_DIR).replace(os.sep, "/")
        crc = "-"
        if with_crc:
            value = 0
            for chunk in bench.read_chunks(file_path, bench.LIMIT_READ_SIZE):
                value = crc32(chunk, value)
            crc = f"{value:08x}"
        lines.append(f"{crc} {os.path.getsize(file_path)} {MANIFEST_PREFIX}{rel} {name}\n")
    with open(path + ".partial", "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(path + ".partial", path)
    return path


def manifest_body(case: bench.Case, with_crc: bool) -> bytes:
    with open(manifest_path(case, with_crc), "rb") as f:
        return f.read()


def manifest_app(body: bytes):
    """The backend's half of the protocol: headers and the manifest, nothing else."""

    def app(environ, start_response):
        start_response("200 OK", [("X-Archive-Files", "zip"),
                                  ("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app


def zipwsgi_manifest_app(with_crc: bool):
    def make(case: bench.Case):
        from zipwsgi import ZipMiddleware

        app = manifest_app(manifest_body(case, with_crc))
        return (ZipMiddleware(app, roots={MANIFEST_PREFIX: bench.DATA_DIR}),
                "ZipMiddleware, mod_zip manifest")

    return make


def _stored(case: bench.Case) -> bool:
    return case.compression == "stored"


APPS = {
    "zipwsgi": ("archiver", zipwsgi_app, lambda case: True),
    "zipstream-ng": ("archiver", zipstream_ng_app, lambda case: True),
    "file": ("limit", file_app, lambda case: not case.dataset.is_tree),
    "zipwsgi-manifest-crc": ("archiver", zipwsgi_manifest_app(True), _stored),
    "zipwsgi-manifest-nocrc": ("archiver", zipwsgi_manifest_app(False), _stored),
    "mod_zip-crc": ("archiver", None, _stored),
    "mod_zip-nocrc": ("archiver", None, _stored),
}
MOD_ZIP = ("mod_zip-crc", "mod_zip-nocrc")


def nginx_binary() -> str | None:
    """``NGINX_BIN``, else an ``nginx`` on PATH, if ``nginx -V`` names mod_zip."""
    import shutil

    candidate = os.environ.get("NGINX_BIN") or shutil.which("nginx")
    if not candidate:
        return None
    try:
        proc = subprocess.run([candidate, "-V"], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return candidate if "mod_zip" in proc.stderr + proc.stdout else None


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    tcp_nopush on;
    server {{
        listen 127.0.0.1:{port};
        location = /archive.zip {{
            proxy_pass http://127.0.0.1:{upstream}/manifest;
        }}
        location {prefix} {{
            internal;
            alias {data}/;
        }}
    }}
}}
"""


class NginxServer:
    """nginx + mod_zip on a free loopback port, its manifest from a loopback upstream."""

    def __init__(self, binary: str, body: bytes, lifetime: int) -> None:
        import socket
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args) -> None:
                pass

        self.tmp = tempfile.TemporaryDirectory(prefix="zipwsgi-bench-nginx-")
        self.upstream = make_server("127.0.0.1", 0, manifest_app(body), handler_class=Quiet)
        threading.Thread(target=self.upstream.serve_forever, daemon=True).start()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        conf = os.path.join(self.tmp.name, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp.name, port=port,
                                      upstream=self.upstream.server_port,
                                      prefix=MANIFEST_PREFIX, data=bench.DATA_DIR))
        self.process = subprocess.Popen(["timeout", str(lifetime), binary, "-p", self.tmp.name,
                                         "-e", os.path.join(self.tmp.name, "error.log"),
                                         "-c", conf], stdout=subprocess.DEVNULL)
        self.info = {"port": port, "how": "nginx mod_zip (1 worker)"}
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            self.info = {"error": "nginx did not start: " + self.error_log()}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}/archive.zip"

    def error_log(self) -> str:
        try:
            with open(os.path.join(self.tmp.name, "error.log")) as f:
                return f.read()[-500:]
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        try:  # `timeout` is the parent; nginx (master_process off) its only child
            with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as f:
                return int(f.read().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    def peak_rss_kib(self) -> int | None:
        try:
            pid = self.pid
            if pid is None:
                return None
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except (OSError, IndexError, ValueError):
            pass
        return None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.upstream.shutdown()
        self.upstream.server_close()
        self.tmp.cleanup()


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
    settings = {"threads": args.threads}
    if args.send_bytes is not None:
        settings["send_bytes"] = args.send_bytes
    if args.outbuf_overflow is not None:
        settings["outbuf_overflow"] = args.outbuf_overflow
    if args.outbuf_high_watermark is not None:
        settings["outbuf_high_watermark"] = args.outbuf_high_watermark
    if args.zipwsgi_serve:
        from zipwsgi.serve import ServeSettings, create_server

        server = create_server(app, "127.0.0.1", 0, ServeSettings(threads=args.threads))
    else:
        server = waitress.create_server(app, host="127.0.0.1", port=0, **settings)
    # Exit on our own even if the parent dies without stopping us.
    watchdog = threading.Timer(args.server_lifetime, os._exit, args=(0,))
    watchdog.daemon = True
    watchdog.start()
    print(json.dumps({"port": server.effective_port, "how": how}), flush=True)
    server.run()
    return 0


class Server:
    """A waitress child process serving one implementation until ``stop()``."""

    def __init__(self, case: bench.Case, impl: str, quick: bool, lifetime: int,
                 waitress_args: tuple[str, ...] = ()) -> None:
        command = [sys.executable, os.path.abspath(__file__), "--serve", case.name, impl,
                   "--server-lifetime", str(lifetime), *waitress_args]
        if quick:
            command.append("--quick")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        self.info = json.loads(line) if line else {"error": "server did not start"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}/"

    @property
    def pid(self) -> int | None:
        return self.process.pid

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


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of process ``pid`` (all its threads) so far, from /proc.

    Wall time on a shared machine measures the neighbours too; the server's own CPU per
    download does not, so it is printed beside the table."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def curl(url: str, timeout: int, output: str = os.devnull) -> dict:
    """Download once, discarding the body; return curl's own size and timing."""
    proc = subprocess.run(
        ["curl", "-s", "-o", output, "--max-time", str(timeout), "-w", CURL_FORMAT, url],
        stdout=subprocess.PIPE, text=True,
    )
    code, size, seconds, first_byte = proc.stdout.split()
    if proc.returncode != 0 or code != "200":
        return {"error": f"curl exit {proc.returncode}, HTTP {code}"}
    return {"seconds": float(seconds), "output_bytes": int(size), "ttfb": float(first_byte)}


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
            if name.startswith("zipwsgi-manifest") or name in MOD_ZIP:
                ensure_manifest(case, name.endswith("-crc"))
            if name in MOD_ZIP:
                server = NginxServer(args.nginx, manifest_body(case, name.endswith("-crc")),
                                     args.server_lifetime)
            else:
                server = Server(case, name, args.quick, args.server_lifetime,
                                waitress_args(args))
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
                before = cpu_seconds(servers[name].pid)
                report = curl(servers[name].url, args.timeout)
                after = cpu_seconds(servers[name].pid)
                if before is not None and after is not None:
                    report["server_cpu"] = after - before
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
    ttfb = []
    for name, row in rows.items():
        times = sorted(r["ttfb"] for r in row.reports if "ttfb" in r)
        if times:
            ttfb.append(f"{name} {times[len(times) // 2] * 1000:.1f} ms")
    if ttfb:
        print("  time to first byte (median): " + ", ".join(ttfb), flush=True)
    cpu = []
    for name, row in rows.items():
        seconds = sorted(r["server_cpu"] for r in row.reports if "server_cpu" in r)
        if seconds:
            cpu.append(f"{name} {seconds[len(seconds) // 2]:.3f} s")
    if cpu:
        print("  server CPU per download (median): " + ", ".join(cpu), flush=True)
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


def waitress_args(args: argparse.Namespace) -> tuple[str, ...]:
    """The waitress settings given to this run, passed on to each server process."""
    out = ["--threads", str(args.threads)]
    if args.send_bytes is not None:
        out += ["--send-bytes", str(args.send_bytes)]
    if args.outbuf_overflow is not None:
        out += ["--outbuf-overflow", str(args.outbuf_overflow)]
    if args.outbuf_high_watermark is not None:
        out += ["--outbuf-high-watermark", str(args.outbuf_high_watermark)]
    if args.zipwsgi_serve:
        out += ["--zipwsgi-serve"]
    return tuple(out)


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
    parser.add_argument("--threads", type=int, default=4, help="waitress threads (4)")
    parser.add_argument("--send-bytes", type=int, default=None,
                        help="waitress send_bytes (its default when not given)")
    parser.add_argument("--outbuf-overflow", type=int, default=None,
                        help="waitress outbuf_overflow (its default when not given)")
    parser.add_argument("--outbuf-high-watermark", type=int, default=None,
                        help="waitress outbuf_high_watermark (its default when not given)")
    parser.add_argument("--zipwsgi-serve", action="store_true",
                        help="serve with zipwsgi.serve's settings (what `zipwsgi serve` "
                             "runs; --threads still applies) instead of waitress's")
    parser.add_argument("--serve", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve_main(args)
    cases = bench.all_cases(args.quick)
    case_names = bench.select_names(args.cases, bench.DEFAULT_CASES, cases, "case")
    args.nginx = nginx_binary()
    default_impls = [name for name in APPS if args.nginx or name not in MOD_ZIP]
    impl_names = bench.select_names(args.impls, default_impls, APPS, "implementation")
    if any(name in MOD_ZIP for name in impl_names) and not args.nginx:
        print("nginx with mod_zip not found (set NGINX_BIN): mod_zip rows skipped")
        impl_names = [name for name in impl_names if name not in MOD_ZIP]
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
              f"{bench.library_versions()}.\n"
              f"waitress ({' '.join(waitress_args(args))}) on 127.0.0.1, "
              f"curl to /dev/null, median of {args.requests} download(s); MB/s = input "
              "bytes / curl's time_total; peak RSS is the server process's.\n")
        bench.print_markdown_tables(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
