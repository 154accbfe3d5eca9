"""First byte of a manifest archive, in-process, against the time to stat its files.

Why this exists: issue #12 target 3. nginx mod_zip answers its first byte almost at once
because it trusts the sizes in the manifest; ``ZipMiddleware`` checks every file before
the first byte (``verify_sizes="eager"``, the default) or trusts the sizes and checks each
file as the stream reaches it (``"lazy"``). This script builds a tree of small files in
folders (once, under a temporary folder or ``--tree``), writes a manifest with ``-`` CRCs,
and times, as medians of ``--rounds`` runs:

- the floors: a bare ``os.lstat`` loop over the files, and parsing the manifest;
- the steps of the eager path: parse, confinement (locate + stat), ``add``, plan, ETag;
  and of its fast path (``ManifestArchive._add_plain``: parse by columns, names and
  locations checked in bulk, the folder-joined ``lstat``, ``add_files``);
- the first byte through ``ZipMiddleware`` (from the call until the first non-empty
  chunk), eager and lazy, zip and tar;

and prints each as a ratio to the stat loop and to the parse. ``--profile`` prints a
cProfile of one eager first byte (the 25 costliest functions by own time).

Usage::

    python benchmarks/bench_first_byte.py                  # 10,000 files in 20 folders
    python benchmarks/bench_first_byte.py --files 20000 --rounds 9 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Iterable
from urllib.parse import quote

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from zipwsgi import ZipMiddleware  # noqa: E402
from zipwsgi.engine.files import FileSource  # noqa: E402
from zipwsgi.engine.zipstream import ZipStream  # noqa: E402
from zipwsgi.http.manifest import parse_manifest  # noqa: E402
from zipwsgi.http.roots import Roots  # noqa: E402

PREFIX = "/files/"


def build_tree(root: str, files: int, folders: int) -> list[tuple[str, int]]:
    """``files`` files of 1-8 KiB spread over ``folders`` folders; (relative path, size)
    pairs, in manifest order. Reused when it already holds the same layout."""
    layout = []
    for index in range(files):
        size = 1024 + (index * 7919) % 7168
        layout.append((f"folder-{index % folders:02d}/file-{index:06d}.txt", size))
    marker = os.path.join(root, f".layout-{files}-{folders}")
    if os.path.exists(marker):
        return layout
    for folder in range(folders):
        os.makedirs(os.path.join(root, f"folder-{folder:02d}"), exist_ok=True)
    for path, size in layout:
        with open(os.path.join(root, path), "wb") as handle:
            handle.write(bytes([65 + len(path) % 26]) * size)
    open(marker, "wb").close()
    return layout


def manifest_for(layout: Iterable[tuple[str, int]]) -> bytes:
    lines = [f"- {size} {PREFIX}{quote(path)} {path}" for path, size in layout]
    return ("\n".join(lines) + "\n").encode()


def manifest_app(body: bytes, fmt: str) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("X-Archive-Files", fmt), ("Content-Type", "text/plain")])
        return [body]

    return app


def environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/archive.zip",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def first_byte(middleware: Callable[..., Any]) -> float:
    """Seconds from the call to the first non-empty chunk (the server would send then)."""
    began = time.perf_counter()
    body = middleware(environ(), lambda status, headers, exc_info=None: None)
    try:
        for chunk in body:
            if chunk:
                break
        took = time.perf_counter() - began
    finally:
        getattr(body, "close", lambda: None)()
    return took


def timed(function: Callable[[], Any], rounds: int) -> float:
    runs = []
    for _ in range(rounds):
        began = time.perf_counter()
        function()
        runs.append(time.perf_counter() - began)
    return statistics.median(runs)


def _fast_steps(body: bytes, tree: str, rounds: int) -> dict[str, float]:
    """Medians of the fast path's steps, each as ``ManifestArchive._add_plain`` runs it;
    empty for a version without them."""
    try:
        from operator import attrgetter

        from zipwsgi.http.manifest import parse_columns
    except ImportError:
        return {}
    results: dict[str, float] = {}
    results["fast: parse by columns"] = timed(lambda: parse_columns(body), rounds)
    columns = parse_columns(body)
    assert columns is not None, "the benchmark's manifest should take the fast path"
    results["fast: names, in bulk"] = timed(
        lambda: ZipStream().check_files(columns.names), rounds)
    roots = Roots({PREFIX: tree})
    results["fast: locations, in bulk"] = timed(
        lambda: roots.plain_folders(columns.locations), rounds)
    plain = roots.plain_folders(columns.locations)
    assert plain is not None

    def stat_all() -> list[FileSource]:
        paths = Roots.plain_paths(plain, {})
        assert paths is not None
        stats = list(map(os.lstat, paths))
        assert list(map(attrgetter("st_size"), stats)) == columns.sizes
        return list(map(FileSource, paths, stats))

    results["fast: join, lstat, FileSource"] = timed(stat_all, rounds)
    sources = stat_all()

    def add_files() -> None:
        stream = ZipStream()
        checked = stream.check_files(columns.names)
        assert checked is not None
        stream.add_files(checked, sources, columns.crcs)

    results["fast: check + add_files"] = timed(add_files, rounds)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--folders", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tree", help="folder for the files (default: a temporary one)")
    parser.add_argument("--profile", action="store_true", help="cProfile one eager first byte")
    args = parser.parse_args(argv)

    temporary = None
    if args.tree is None:
        temporary = args.tree = tempfile.mkdtemp(prefix="zipwsgi-first-byte-")
    try:
        layout = build_tree(args.tree, args.files, args.folders)
        body = manifest_for(layout)
        paths = [os.path.join(args.tree, path) for path, _ in layout]
        rounds = args.rounds
        results: dict[str, float] = {}

        results["lstat loop"] = timed(lambda: [os.lstat(p) for p in paths], rounds)
        results["parse"] = timed(lambda: parse_manifest(body), rounds)
        entries = parse_manifest(body)

        def confine() -> list[Any]:
            roots = Roots({PREFIX: args.tree})
            folders: dict[str, str] = {}
            return [roots.locate(entry.location, folders) for entry in entries]

        results["confinement (locate)"] = timed(confine, rounds)
        located = confine()

        def add() -> ZipStream:
            stream = ZipStream()
            # What the middleware calls (add_file), or add() in versions without it.
            add_file = getattr(stream, "add_file", None) or stream.add
            for entry, (path, st) in zip(entries, located):
                add_file(FileSource(path, st), entry.name, crc=entry.crc)
            return stream

        results["add"] = timed(add, rounds)

        # The steps of the middleware's fast path (ManifestArchive._add_plain), where
        # this version has it: the same work by columns.
        fast = _fast_steps(body, args.tree, rounds)
        results.update(fast)

        streams = [add() for _ in range(rounds)]
        results["plan"] = timed(lambda: streams.pop().size, rounds)
        planned = add()
        results["ETag (fingerprint)"] = timed(planned.fingerprint, rounds)

        for fmt in ("zip", "tar"):
            for mode in ("eager", "lazy"):
                try:
                    middleware = ZipMiddleware(manifest_app(body, fmt), roots={PREFIX: args.tree},
                                               verify_sizes=mode)
                except TypeError:  # a version without verify_sizes
                    if mode == "lazy":
                        continue
                    middleware = ZipMiddleware(manifest_app(body, fmt), roots={PREFIX: args.tree})
                first_byte(middleware)  # warm: imports, page cache, dentry cache
                results[f"first byte, {fmt}, {mode}"] = timed(
                    lambda m=middleware: first_byte(m), rounds)  # type: ignore[misc]

        stat_time, parse_time = results["lstat loop"], results["parse"]
        print(f"{args.files:,} files in {args.folders} folders, manifest with '-' CRCs, "
              f"median of {rounds} runs; Python {sys.version.split()[0]}")
        print(f"{'step':<34}{'ms':>9}{'x lstat':>10}{'x parse':>10}{'us/entry':>10}")
        for name, seconds in results.items():
            print(f"{name:<34}{seconds * 1e3:>9.1f}{seconds / stat_time:>10.2f}"
                  f"{seconds / parse_time:>10.2f}{seconds * 1e6 / args.files:>10.2f}")

        if args.profile:
            middleware = ZipMiddleware(manifest_app(body, "zip"), roots={PREFIX: args.tree})
            profiler = cProfile.Profile()
            profiler.enable()
            first_byte(middleware)
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(25)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
