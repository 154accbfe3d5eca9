"""Flask: a zip download two ways.

    python examples/flask_app.py [--files DIR] [--port 8080]
    curl -OJ http://127.0.0.1:8080/manifest.zip   # X-Archive-Files: zip + a manifest
    curl -OJ http://127.0.0.1:8080/stream.zip     # the body is a ZipStream

Wrap ``app.wsgi_app`` (not ``app``), as with any WSGI middleware in Flask. Return a
ZipStream with ``direct_passthrough=True`` so werkzeug hands it over untouched.
"""

from __future__ import annotations

from _common import HELLO, manifest, parse_args, serve
from flask import Flask, Response

from zipwsgi import ZipMiddleware, ZipStream


def make_app(files: str) -> Flask:
    app = Flask(__name__)

    @app.route("/manifest.zip")
    def manifest_zip():
        return Response(manifest(files), mimetype="text/plain",
                        headers={"X-Archive-Files": "zip"})

    @app.route("/stream.zip")
    def stream_zip():
        stream = ZipStream(precompute_crc=True)  # Java-friendly: no data descriptors
        stream.add_path(files, "files")
        stream.add(HELLO, "hello.txt")
        return Response(stream, direct_passthrough=True)

    @app.route("/hello.txt")
    def hello():
        return Response(HELLO, mimetype="text/plain")

    app.wsgi_app = ZipMiddleware(app.wsgi_app, roots={"/files/": files}, precompute_crc=True)
    return app


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    serve(make_app(args.files), args.host, args.port)
