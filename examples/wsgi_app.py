"""Plain WSGI: a zip download two ways, no framework.

    python examples/wsgi_app.py [--files DIR] [--port 8080]
    curl -OJ http://127.0.0.1:8080/manifest.zip   # X-Archive-Files: zip + a manifest
    curl -OJ http://127.0.0.1:8080/stream.zip     # the body is a ZipStream
    curl -OJ http://127.0.0.1:8080/manifest.tar   # X-Archive-Files: tar, the same manifest
    curl -OJ http://127.0.0.1:8080/stream.tar.gz  # the body is a TarStream("gzip")

``/manifest.zip`` answers like an upstream of nginx's mod_zip would: a header and one
line per file; ``ZipMiddleware`` reads ``/files/...`` from disk (confined to the folder)
and fetches ``/hello.txt`` from this same app. ``/stream.zip`` builds the archive in
Python and returns it as the WSGI iterable. Both get Range, resume, ETag and HEAD. The
``.tar`` and ``.tar.gz`` routes show the swap: ``tar`` in the header, or a ``TarStream``.
"""

from __future__ import annotations

from _common import HELLO, manifest, parse_args, serve

from zipwsgi import TarStream, ZipMiddleware, ZipStream


def make_app(files: str):
    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path in ("/manifest.zip", "/manifest.tar", "/manifest.tar.gz"):
            fmt = path.split(".", 1)[1]  # "zip", "tar" or "tar.gz": the same manifest
            start_response("200 OK", [("Content-Type", "text/plain"), ("X-Archive-Files", fmt)])
            return [manifest(files)]
        if path in ("/stream.zip", "/stream.tar", "/stream.tar.gz"):
            if path == "/stream.zip":
                stream = ZipStream(precompute_crc=True)  # Java-friendly: no data descriptors
            else:
                stream = TarStream("gzip" if path.endswith(".gz") else None)
            stream.add_path(files, "files")
            stream.add(HELLO, "hello.txt")
            start_response("200 OK", [])  # the middleware sets type, length, validators
            return stream
        if path == "/hello.txt":
            start_response("200 OK", [("Content-Type", "text/plain"),
                                      ("Content-Length", str(len(HELLO)))])
            return [HELLO]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"try /manifest.zip or /stream.zip (or .tar, .tar.gz)\n"]

    return ZipMiddleware(app, roots={"/files/": files}, precompute_crc=True)


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    serve(make_app(args.files), args.host, args.port)
