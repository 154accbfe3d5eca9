"""``zipwsgi.django.archive_response`` and ``zipwsgi.flask.send_archive``: the HTTP rules
of the middleware (200, 206 single and multipart, 304, 412, 416, HEAD, validators,
Unicode download names) in each framework's own response, without middleware; the
archive closed on every path; clear errors without the framework, and under ASGI.

In-process with webtest; the same views over waitress with curl are in test_migration.py.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable

import pytest
import webtest
from django_helper import django_app

from zipwsgi import ZipStream
from zipwsgi.compat.zipstream import ZipFile

FILENAME = "Отчёт 2024.zip"
DISPOSITION = (
    "attachment; filename=\"_____ 2024.zip\"; "
    "filename*=UTF-8''%D0%9E%D1%82%D1%87%D1%91%D1%82%202024.zip"
)


class Tracked(ZipStream):
    """A ZipStream that counts its close() calls, to prove each answer closes it."""

    closes = 0

    def close(self) -> None:
        Tracked.closes += 1
        super().close()


#: What the views serve; each test sets it (a factory: every request builds its archive).
ARCHIVE: dict[str, Callable[[], object]] = {}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "café").mkdir(parents=True)
    (root / "café" / "menu.txt").write_bytes(b"espresso\n" * 3000)
    (root / "empty").mkdir()
    (root / "data.bin").write_bytes(bytes(range(256)) * 400)
    return root


def _tracked(tree: Path) -> Tracked:
    zs = Tracked()
    zs.add_path(tree, "tree")
    zs.add(b"hello\n", "hello.txt", mtime=1_700_000_000)
    return zs


# --- the two frameworks, one view each --------------------------------------------------------


def django_view(request):
    from zipwsgi.django import archive_response

    return archive_response(request, ARCHIVE["make"](), FILENAME)


def django_headers(request):
    from zipwsgi.django import archive_response

    return archive_response(
        request, ARCHIVE["make"](), None, etag="app-tag", headers={"X-Extra": "1"}
    )


def _urlpatterns() -> list:
    from django.urls import path

    return [path("a.zip", django_view), path("h.zip", django_headers)]


def flask_app():
    from flask import Flask

    from zipwsgi.flask import send_archive

    app = Flask(__name__)

    @app.route("/a.zip", methods=["GET", "HEAD"])
    def archive():
        return send_archive(ARCHIVE["make"](), FILENAME)

    @app.route("/h.zip")
    def with_headers():
        return send_archive(ARCHIVE["make"](), None, etag="app-tag", headers={"X-Extra": "1"})

    return app


@pytest.fixture(params=["django", "flask"])
def client(request):
    if request.param == "flask":
        yield webtest.TestApp(flask_app())
        return
    global urlpatterns
    urlpatterns = _urlpatterns()
    with django_app(__name__) as app:
        yield webtest.TestApp(app)


urlpatterns: list = []


# --- the HTTP rules ---------------------------------------------------------------------------


def test_whole_archive_exact_length_and_headers(client, tree):
    ARCHIVE["make"] = lambda: _tracked(tree)
    before = Tracked.closes
    whole = client.get("/a.zip")
    assert whole.status_int == 200
    assert whole.headers["Content-Type"] == "application/zip"
    assert whole.headers["Content-Length"] == str(len(whole.body)) == str(_tracked(tree).size)
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Disposition"] == DISPOSITION
    assert whole.headers["ETag"].startswith('"')
    assert whole.headers["Last-Modified"]
    archive = zipfile.ZipFile(io.BytesIO(whole.body))
    assert archive.testzip() is None
    assert archive.read("tree/café/menu.txt") == b"espresso\n" * 3000
    assert archive.read("hello.txt") == b"hello\n"
    assert Tracked.closes - before >= 1


def test_ranges_conditions_and_head(client, tree):
    ARCHIVE["make"] = lambda: _tracked(tree)
    whole = client.get("/a.zip")
    size, etag = len(whole.body), whole.headers["ETag"]
    before = Tracked.closes

    part = client.get("/a.zip", headers={"Range": "bytes=100-1099"}, status=206)
    assert part.body == whole.body[100:1100]
    assert part.headers["Content-Range"] == f"bytes 100-1099/{size}"
    assert part.headers["Content-Length"] == "1000"

    multi = client.get("/a.zip", headers={"Range": "bytes=0-9,-10"}, status=206)
    assert multi.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert whole.body[:10] in multi.body and whole.body[-10:] in multi.body

    resumed = client.get("/a.zip", headers={"Range": "bytes=5-", "If-Range": etag}, status=206)
    assert resumed.body == whole.body[5:]
    stale = client.get("/a.zip", headers={"Range": "bytes=5-", "If-Range": '"other"'})
    assert stale.status_int == 200 and stale.body == whole.body

    client.get("/a.zip", headers={"Range": f"bytes={size}-"}, status=416)
    assert client.get("/a.zip", headers={"If-None-Match": etag}, status=304).body == b""
    since = whole.headers["Last-Modified"]
    client.get("/a.zip", headers={"If-Modified-Since": since}, status=304)
    client.get("/a.zip", headers={"If-Match": '"other"'}, status=412)
    client.get("/a.zip", headers={"If-Unmodified-Since": "Thu, 01 Jan 1981 00:00:00 GMT"},
               status=412)

    head = client.head("/a.zip")
    assert head.status_int == 200 and head.body == b""
    assert head.headers["Content-Length"] == str(size)
    # Every one of those answers closed its archive (10 requests).
    assert Tracked.closes - before >= 10


def test_caller_validators_and_headers(client, tree):
    ARCHIVE["make"] = lambda: _tracked(tree)
    response = client.get("/h.zip")
    assert response.headers["ETag"] == '"app-tag"'
    assert response.headers["X-Extra"] == "1"
    assert "Content-Disposition" not in response.headers
    client.get("/h.zip", headers={"If-None-Match": '"app-tag"'}, status=304)


def test_deflated_archive_has_no_length_and_ignores_range(client, tree):
    def make():
        zs = ZipStream("deflate")
        zs.add_path(tree, "tree")
        return zs

    ARCHIVE["make"] = make
    whole = client.get("/a.zip")
    # No length is known (webtest adds one for what it collected): no ranges offered.
    assert "Accept-Ranges" not in whole.headers
    assert zipfile.ZipFile(io.BytesIO(whole.body)).testzip() is None
    ranged = client.get("/a.zip", headers={"Range": "bytes=0-9"})
    assert ranged.status_int == 200 and ranged.body == whole.body


def test_python_zipstream_zipfile_is_accepted(client, tree):
    def make():
        z = ZipFile(mode="w")
        z.write(str(tree / "data.bin"), "data.bin")
        z.writestr("note.txt", "ünïcode")
        return z

    ARCHIVE["make"] = make
    whole = client.get("/a.zip")
    assert whole.headers["Content-Length"] == str(len(whole.body))
    archive = zipfile.ZipFile(io.BytesIO(whole.body))
    assert archive.read("note.txt") == "ünïcode".encode()
    client.get("/a.zip", headers={"Range": "bytes=10-19"}, status=206)


# --- Django specifics -----------------------------------------------------------------------


def test_django_refuses_asgi_requests_clearly(tree):
    from django.test import AsyncRequestFactory

    from zipwsgi.django import archive_response

    with django_app(__name__):
        request = AsyncRequestFactory().get("/a.zip")
        with pytest.raises(NotImplementedError, match="WSGI handler only"):
            archive_response(request, _tracked(tree), "a.zip")


def test_django_response_is_a_streaming_response_that_closes_the_archive(tree):
    from django.http import StreamingHttpResponse
    from django.test import RequestFactory

    from zipwsgi.django import archive_response

    with django_app(__name__):
        zs = _tracked(tree)
        before = Tracked.closes
        response = archive_response(RequestFactory().get("/a.zip"), zs, "a.zip")
        assert isinstance(response, StreamingHttpResponse)
        assert int(response["Content-Length"]) == zs.size
        next(iter(response))  # started, then abandoned (a client that went away)
        response.close()
        assert Tracked.closes - before == 1


# --- without the framework ------------------------------------------------------------------


@pytest.mark.parametrize(("module", "needs"), [("zipwsgi.django", "Django"),
                                                ("zipwsgi.flask", "Flask")])
def test_clear_import_error_without_the_framework(module, needs):
    hide = "django" if needs == "Django" else "flask"
    code = (
        f"import sys; sys.modules[{hide!r}] = None\n"
        f"try:\n    import {module}\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert f"{module} needs {needs}: pip install" in out.stdout, out.stdout + out.stderr
