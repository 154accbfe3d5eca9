"""Django (a one-file project): a zip download two ways.

    python examples/django_app.py [--files DIR] [--port 8080]
    curl -OJ http://127.0.0.1:8080/manifest.zip   # X-Archive-Files: zip + a manifest
    curl -OJ http://127.0.0.1:8080/stream.zip     # the body is a ZipStream

In a real project wrap the application in ``wsgi.py``::

    application = ZipMiddleware(
        get_wsgi_application(), roots={"/files/": MEDIA_ROOT}, precompute_crc=True
    )

Return a ZipStream in a ``StreamingHttpResponse`` (a plain ``HttpResponse`` would read
the whole archive into memory). Apps using django-zip-stream's ``TransferZipResponse``
(``X-Archive-Files`` + a manifest) work unchanged.
"""

from __future__ import annotations

from _common import HELLO, manifest, parse_args, serve
from django.conf import settings

from zipwsgi import ZipMiddleware, ZipStream

FILES = ""  # set by make_app: the folder served

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="zipwsgi-example-not-secret",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
    )

from django.core.wsgi import get_wsgi_application  # noqa: E402  (after settings)
from django.http import HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def manifest_zip(request):
    response = HttpResponse(manifest(FILES), content_type="text/plain")
    response["X-Archive-Files"] = "zip"
    return response


def stream_zip(request):
    stream = ZipStream(precompute_crc=True)  # Java-friendly: no data descriptors
    stream.add_path(FILES, "files")
    stream.add(HELLO, "hello.txt")
    return StreamingHttpResponse(stream, content_type="application/zip")


def hello(request):
    return HttpResponse(HELLO, content_type="text/plain")


urlpatterns = [
    path("manifest.zip", manifest_zip),
    path("stream.zip", stream_zip),
    path("hello.txt", hello),
]


def make_app(files: str):
    global FILES
    FILES = files
    return ZipMiddleware(get_wsgi_application(), roots={"/files/": files}, precompute_crc=True)


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0])
    serve(make_app(args.files), args.host, args.port)
