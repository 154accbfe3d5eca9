"""Bottle: a zip download two ways.

    python examples/bottle_app.py [--files DIR] [--port 8080]
    curl -OJ http://127.0.0.1:8080/manifest.zip   # X-Archive-Files: zip + a manifest
    curl -OJ http://127.0.0.1:8080/stream.zip     # the body is a ZipStream

Bottle peeks at the first chunk of any iterable a route returns, so returning a
ZipStream reads the start of the archive once before the middleware takes over (and
even for HEAD). Prefer the manifest with Bottle; the marker works, at that small cost.
"""

from __future__ import annotations

from _common import HELLO, manifest, parse_args, serve
from bottle import Bottle, response

from zipwsgi import ZipMiddleware, ZipStream


def make_app(files: str):
    app = Bottle()

    @app.route("/manifest.zip")
    def manifest_zip():
        response.content_type = "text/plain"
        response.set_header("X-Archive-Files", "zip")
        return manifest(files)

    @app.route("/stream.zip")
    def stream_zip():
        stream = ZipStream(precompute_crc=True)  # Java-friendly: no data descriptors
        stream.add_path(files, "files")
        stream.add(HELLO, "hello.txt")
        return stream

    @app.route("/hello.txt")
    def hello():
        response.content_type = "text/plain"
        return HELLO

    return ZipMiddleware(app, roots={"/files/": files}, precompute_crc=True)


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    serve(make_app(args.files), args.host, args.port)
