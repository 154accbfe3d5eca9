"""Pyramid: a zip download two ways.

    python examples/pyramid_app.py [--files DIR] [--port 8080]
    curl -OJ http://127.0.0.1:8080/manifest.zip   # X-Archive-Files: zip + a manifest
    curl -OJ http://127.0.0.1:8080/stream.zip     # the body is a ZipStream

A ZipStream is a WebOb ``app_iter``: ``Response(app_iter=stream)``. Leave
``conditional_response`` off on these responses: the middleware answers Range, If-*
and HEAD for the archive itself.
"""

from __future__ import annotations

from _common import HELLO, manifest, parse_args, serve
from pyramid.config import Configurator
from pyramid.response import Response

from zipwsgi import ZipMiddleware, ZipStream


def make_app(files: str):
    def manifest_zip(request):
        return Response(body=manifest(files), content_type="text/plain",
                        headers={"X-Archive-Files": "zip"})

    def stream_zip(request):
        stream = ZipStream(precompute_crc=True)  # Java-friendly: no data descriptors
        stream.add_path(files, "files")
        stream.add(HELLO, "hello.txt")
        return Response(app_iter=stream)

    def hello(request):
        return Response(body=HELLO, content_type="text/plain")

    with Configurator() as config:
        for name, path, view in [("manifest", "/manifest.zip", manifest_zip),
                                 ("stream", "/stream.zip", stream_zip),
                                 ("hello", "/hello.txt", hello)]:
            config.add_route(name, path)
            config.add_view(view, route_name=name)
        app = config.make_wsgi_app()
    return ZipMiddleware(app, roots={"/files/": files}, precompute_crc=True)


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    serve(make_app(args.files), args.host, args.port)
