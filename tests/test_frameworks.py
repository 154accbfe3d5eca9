"""The examples: plain WSGI, Flask, Pyramid, Bottle and Django, both triggers each.

In-process with webtest (what each framework really hands the middleware: werkzeug's
direct passthrough, WebOb app_iters, Bottle's peeked ``_closeiter``, Django's
``StreamingHttpResponse``), then each example started as its own waitress process and
downloaded with curl, opened by the real readers and resumed with ``curl -C -``.
"""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import webtest
from servers import EXAMPLES, example_server, open_with_readers

FRAMEWORKS = ["wsgi_app", "flask_app", "pyramid_app", "bottle_app", "django_app"]
TRIGGERS = ["manifest.zip", "stream.zip"]


def load(name: str):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("frameworks") / "files"
    (root / "café" / "deep").mkdir(parents=True)
    (root / "café" / "menu.txt").write_bytes(b"espresso\n" * 500)
    (root / "café" / "deep" / "empty.txt").write_bytes(b"")
    (root / "Отчёт 2024.txt").write_text("отчёт\n" * 50, "utf-8")
    (root / "a+b & c.bin").write_bytes(os.urandom(600_000))  # > one chunk: read in pieces
    return root


def check_archive(body: bytes, files: Path, hello: bytes) -> None:
    """Every file of ``files`` under ``files/``, plus the app's own ``hello.txt``."""
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    on_disk = {p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file()}
    in_zip = {n[len("files/"):] for n in archive.namelist() if n.startswith("files/")
              and not n.endswith("/")}
    assert in_zip == on_disk
    for rel in on_disk:
        assert archive.read("files/" + rel) == (files / rel).read_bytes()
    assert archive.read("hello.txt") == hello


# --- in-process ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=FRAMEWORKS)
def example(request, files):
    module = load(request.param)
    return module, webtest.TestApp(module.make_app(str(files)))


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_each_framework_serves_each_trigger(example, files, trigger):
    module, app = example
    whole = app.get("/" + trigger)
    assert whole.headers["Content-Type"] == "application/zip"
    assert whole.headers["Content-Length"] == str(len(whole.body))
    assert whole.headers["Content-Disposition"] == f'attachment; filename="{trigger}"'
    check_archive(whole.body, files, module.HELLO)
    head = app.head("/" + trigger)
    assert head.body == b"" and head.headers["Content-Length"] == str(len(whole.body))
    part = app.get("/" + trigger, headers={"Range": "bytes=100-1099"}, status=206)
    assert part.body == whole.body[100:1100]
    if "ETag" in whole.headers:
        app.get("/" + trigger, headers={"If-None-Match": whole.headers["ETag"]}, status=304)
        headers = {"Range": "bytes=5-", "If-Range": whole.headers["ETag"]}
        resumed = app.get("/" + trigger, headers=headers, status=206)
        assert resumed.body == whole.body[5:]


def test_every_example_archive_has_a_strong_etag(example):
    _, app = example
    for trigger in TRIGGERS:
        etag = app.get("/" + trigger).headers["ETag"]
        assert etag.startswith('"') and app.get("/" + trigger).headers["ETag"] == etag


def test_ordinary_routes_pass_through(example):
    module, app = example
    response = app.get("/hello.txt")
    assert response.body == module.HELLO and response.content_type == "text/plain"


def test_django_finishes_the_request_after_the_archive(files):
    from django.core.signals import request_finished

    module = load("django_app")
    app = webtest.TestApp(module.make_app(str(files)))
    finished = []

    def count(**kwargs):
        finished.append(1)

    request_finished.connect(count)
    try:
        app.get("/stream.zip")
        app.head("/stream.zip")
        app.get("/manifest.zip")
    finally:
        request_finished.disconnect(count)
    # One per request, plus one per sub-request (the check and the fetch of hello.txt).
    assert len(finished) == 2 + 1 + 2


def test_flask_without_direct_passthrough_is_recognised_too(files):
    from flask import Flask, Response

    from zipwsgi import ZipMiddleware, ZipStream

    app = Flask(__name__)

    @app.route("/z")
    def z():
        stream = ZipStream()
        stream.add(b"abc", "abc.txt")
        return Response(stream)  # werkzeug wraps it in a ClosingIterator

    app.wsgi_app = ZipMiddleware(app.wsgi_app)
    response = webtest.TestApp(app).get("/z")
    assert zipfile.ZipFile(io.BytesIO(response.body)).read("abc.txt") == b"abc"
    assert response.headers["Content-Length"] == str(len(response.body))


def test_bottles_peek_leaves_no_file_open(files):
    module = load("bottle_app")
    middleware = module.make_app(str(files))
    environ = webtest.TestRequest.blank("/stream.zip").environ

    def open_files() -> list[str]:
        links = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                links.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # the descriptor listdir itself used
                pass
        return [link for link in links if link.startswith(str(files))]

    body = middleware(environ, lambda *args: None)
    try:
        assert open_files() == []  # Bottle read the first chunk; that pass is closed
    finally:
        body.close()


# --- over waitress, one process per framework ----------------------------------------------


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_each_example_over_waitress(name, files, tmp_path):
    with example_server(name, files) as server:
        for trigger in TRIGGERS:
            url = server.url + trigger
            out = tmp_path / f"{name}-{trigger}"
            result = subprocess.run(["curl", "-sS", "-o", str(out), "-w", "%{http_code}", url],
                                    capture_output=True, timeout=60)
            assert result.stdout == b"200", result.stderr
            check_archive(out.read_bytes(), files, load(name).HELLO)
            open_with_readers(out, java_stream=True)
            # Cut after a third, then let curl resume it.
            whole = out.read_bytes()
            part = tmp_path / f"{name}-{trigger}.part"
            part.write_bytes(whole[: len(whole) // 3])
            result = subprocess.run(["curl", "-sS", "-C", "-", "-o", str(part), url],
                                    capture_output=True, timeout=60)
            assert result.returncode == 0, result.stderr
            assert part.read_bytes() == whole
