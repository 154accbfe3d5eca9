"""Real-browser test helpers: the system Chromium driven by Playwright, and a live server.

Why a real browser: the download page is only done when a person can open it, tick
entries and get a file. These helpers do exactly that, and nothing is fetched at test
time: Playwright's Python client launches the Debian ``chromium`` already on the
machine (``$ZIPWSGI_CHROMIUM`` overrides the path); no Playwright browser is installed.

If Chromium or Playwright is missing, tests using :func:`launch_chromium` are skipped,
unless ``ZIPWSGI_REQUIRE_READERS=1`` (as in CI), where a missing reader is a failure.

Typical use in a test module (the module-scoped ``chromium`` fixture, which calls
:func:`launch_chromium`, lives in ``conftest.py``)::

    from browser import download_selection, live_server

    @pytest.mark.browser
    def test_pick_two(chromium, tmp_path):
        with live_server(app) as url:
            path = download_selection(chromium, url + "docs/", ["a.txt", "b"], tmp_path)

(This file is a helper, not a test module: its name does not start with ``test_``.
Tests import it as ``browser`` because ``tests/`` is on ``sys.path`` under pytest's
default import mode.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from playwright.sync_api import Browser, Page

CHROMIUM = os.environ.get("ZIPWSGI_CHROMIUM", "/usr/bin/chromium")

#: Headless, sandbox-free (containers), and silent: no GPU, no QUIC, no background
#: traffic to Google (updates, sync, field trials) that could slow or flake a test.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: The listing page's control names (zipwsgi/templates/listing.html).
#: The selection button: "Download as zip", or "Download" beside a format choice.
DOWNLOAD_SELECTED = "Download"
DOWNLOAD_ALL = "Download whole folder"


def readers_required() -> bool:
    """True where a missing external reader (here: the browser) must fail the run."""
    return os.environ.get("ZIPWSGI_REQUIRE_READERS") == "1"


def _missing(reason: str) -> NoReturn:
    if readers_required():
        pytest.fail(f"{reason} (ZIPWSGI_REQUIRE_READERS=1)")
    pytest.skip(reason)


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """Start the system Chromium under Playwright; skip (or fail in CI) if it is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def live_server(app: WSGIApplication, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` with waitress on a free port in a thread; yield its base URL.

    The loop runs in small steps so that stopping, and closing every socket, happens in
    the server's own thread (the suite turns ResourceWarning into an error).
    """
    from waitress import wasyncore
    from waitress.server import create_server

    server = create_server(app, host=host, port=0, threads=4)
    socket_map = server._map  # waitress's own map of listening and client sockets
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.is_set():
                wasyncore.loop(timeout=0.05, map=socket_map, count=1)
        finally:
            wasyncore.close_all(socket_map)
            server.task_dispatcher.shutdown()

    thread = threading.Thread(target=run, name="zipwsgi-live-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.effective_port}/"
    finally:
        stop.set()
        thread.join(timeout=10)


@contextmanager
def open_page(browser: Browser, **context_options: Any) -> Iterator[Page]:
    """A fresh browser context and page that must behave: on leaving, it fails the test
    if the page raised a script error, logged a console error (CSP violations land
    there), or requested anything from another origin than the ones it navigated to.
    """
    context = browser.new_context(accept_downloads=True, **context_options)
    page = context.new_page()
    errors: list[str] = []
    origins: set[str] = set()
    foreign: list[str] = []

    def on_request(request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https"):
            return
        origin = f"{parts.scheme}://{parts.netloc}"
        if request.is_navigation_request() and request.frame == page.main_frame:
            origins.add(origin)
        elif origin not in origins:
            foreign.append(request.url)

    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    page.on("request", on_request)
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors
    assert not foreign, f"the page fetched from elsewhere: {foreign}"


def css_string(value: str) -> str:
    """Quote ``value`` for a CSS attribute selector, whatever characters it holds."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\a ").replace("\r", "\\d ")
    return f'"{escaped}"'


def download(page: Page, action: Callable[[], None], dest_dir: Path) -> Path:
    """Run ``action`` (a click), wait for the download it starts, save it, return its path.

    The file keeps the name the server suggested (Content-Disposition), so tests can
    check that too.
    """
    with page.expect_download() as info:
        action()
    result = info.value
    failure = result.failure()
    assert failure is None, f"download failed: {failure}"
    target = Path(dest_dir) / result.suggested_filename
    result.save_as(target)
    return target


def tick(page: Page, names: Sequence[str]) -> None:
    """Tick the listing rows whose posted ``path`` value is in ``names``."""
    for name in names:
        page.locator(f'input[name="path"][value={css_string(name)}]').check()


def download_selection(
    browser: Browser,
    url: str,
    names: Sequence[str],
    dest_dir: Path,
    **context_options: Any,
) -> Path:
    """Open the listing page at ``url``, tick ``names``, press "Download as zip".

    ``context_options`` go to Playwright's ``new_context``, e.g.
    ``java_script_enabled=False`` to prove the plain form works.
    """
    with open_page(browser, **context_options) as page:
        page.goto(url)
        tick(page, names)
        button = page.get_by_role("button", name=DOWNLOAD_SELECTED)
        return download(page, button.click, dest_dir)


def download_whole_folder(browser: Browser, url: str, dest_dir: Path) -> Path:
    """Open the listing page at ``url`` and follow its "Download whole folder" link."""
    with open_page(browser) as page:
        page.goto(url)
        link = page.get_by_role("link", name=DOWNLOAD_ALL)
        return download(page, link.click, dest_dir)
