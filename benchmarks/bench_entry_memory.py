"""Metadata per entry: what an archive keeps for each file between planning and streaming.

Why this exists: issue #12 asks for under 300 bytes per entry. A server holds one
planned archive per download in flight, so 100,000 files x 8 downloads is the product
that matters. This script builds a tree of small files (once, under a temporary folder
or ``--tree``), then, with ``tracemalloc`` on, measures what stays allocated after:

- ``ZipStream().add_path(folder)`` and its size (the plan), zipwsgi's walk;
- the same through ``zipstream-ng`` (``ZipStream.from_path``, sized), when installed;
- a mod_zip manifest of the same files through ``ZipMiddleware`` (the response built,
  not yet iterated), eager and lazy, whose body is made before measuring;

and prints bytes per entry and the ratio to zipstream-ng. ``--detail`` adds the
allocation sites holding the most (tracemalloc by line), which is how to find what to
cut next.

Usage::

    python benchmarks/bench_entry_memory.py                 # 20,000 files in 20 folders
    python benchmarks/bench_entry_memory.py --files 50000 --detail
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import shutil
import sys
import tempfile
import tracemalloc
from typing import Any, Callable, Optional
from urllib.parse import quote

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from zipwsgi import ZipMiddleware, ZipStream  # noqa: E402

PREFIX = "/files/"


def build_tree(root: str, files: int, folders: int) -> list[tuple[str, int]]:
    """``files`` files of 1-64 bytes in ``folders`` folders: (relative path, size) pairs.
    Names look like real ones (``folder-07/report-000123.txt``); reused when present."""
    layout = [(f"folder-{index % folders:02d}/report-{index:06d}.txt", 1 + index % 64)
              for index in range(files)]
    marker = os.path.join(root, f".layout-{files}-{folders}")
    if os.path.exists(marker):
        return layout
    for folder in range(folders):
        os.makedirs(os.path.join(root, f"folder-{folder:02d}"), exist_ok=True)
    for path, size in layout:
        with open(os.path.join(root, path), "wb") as handle:
            handle.write(b"x" * size)
    open(marker, "wb").close()
    return layout


def retained(build: Callable[[], Any], detail: bool) -> tuple[int, Any]:
    """Bytes still allocated after ``build()`` (its result kept alive), and the top
    allocation sites when ``detail``."""
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    result = build()
    gc.collect()
    after = tracemalloc.take_snapshot()
    current = sum(stat.size for stat in after.statistics("filename")) - sum(
        stat.size for stat in before.statistics("filename"))
    sites = after.compare_to(before, "lineno")[:12] if detail else None
    tracemalloc.stop()
    del result
    return current, sites


def zipwsgi_walk(tree: str) -> Callable[[], Any]:
    def build() -> Any:
        stream = ZipStream()
        stream.add_path(tree, "")
        stream.size  # noqa: B018 -- the plan is part of what a download keeps
        return stream

    return build


def zipstream_ng_walk(tree: str) -> Optional[Callable[[], Any]]:
    try:
        import zipstream as zipstream_ng  # zipstream-ng's module name
    except ImportError:
        return None
    if not hasattr(zipstream_ng.ZipStream, "from_path"):
        return None  # python-zipstream, not zipstream-ng

    def build() -> Any:
        stream = zipstream_ng.ZipStream.from_path(tree, sized=True)
        len(stream)
        return stream

    return build


def manifest_response(tree: str, body: bytes, mode: str) -> Callable[[], Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("X-Archive-Files", "zip")])
        return [body]

    middleware = ZipMiddleware(app, roots={PREFIX: tree}, verify_sizes=mode)

    def build() -> Any:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/archive.zip", "SCRIPT_NAME": "",
            "QUERY_STRING": "", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": False,
            "wsgi.run_once": False, "wsgi.version": (1, 0),
        }
        return middleware(environ, lambda status, headers, exc_info=None: None)

    build()  # warm: imports and caches are not per-entry costs
    return build


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--folders", type=int, default=20)
    parser.add_argument("--tree", help="folder for the files (default: a temporary one)")
    parser.add_argument("--detail", action="store_true", help="top allocation sites")
    args = parser.parse_args(argv)

    temporary = None
    if args.tree is None:
        temporary = args.tree = tempfile.mkdtemp(prefix="zipwsgi-entry-memory-")
    try:
        layout = build_tree(args.tree, args.files, args.folders)
        body = "".join(f"- {size} {PREFIX}{quote(path)} {path}\n"
                       for path, size in layout).encode()
        cases: dict[str, Optional[Callable[[], Any]]] = {
            "zipwsgi add_path": zipwsgi_walk(args.tree),
            "zipstream-ng from_path": zipstream_ng_walk(args.tree),
            "zipwsgi manifest, eager": manifest_response(args.tree, body, "eager"),
            "zipwsgi manifest, lazy": manifest_response(args.tree, body, "lazy"),
        }
        results: dict[str, float] = {}
        details = {}
        for name, build in cases.items():
            if build is None:
                continue
            build()  # warm
            size, sites = retained(build, args.detail)
            results[name] = size / args.files
            details[name] = sites
        peer = results.get("zipstream-ng from_path")
        print(f"{args.files:,} files in {args.folders} folders; bytes kept per entry "
              f"(tracemalloc); Python {sys.version.split()[0]}")
        print(f"{'case':<28}{'B/entry':>10}{'x zipstream-ng':>16}")
        for name, per_entry in results.items():
            ratio = f"{per_entry / peer:.2f}" if peer else "-"
            print(f"{name:<28}{per_entry:>10.0f}{ratio:>16}")
        if args.detail:
            for name, sites in details.items():
                print(f"\n{name}: top allocation sites")
                for stat in sites or []:
                    frame = stat.traceback[0]
                    print(f"  {stat.size_diff / args.files:8.1f} B/entry  "
                          f"{os.path.relpath(frame.filename)}:{frame.lineno}")
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
