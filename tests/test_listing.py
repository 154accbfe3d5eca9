"""The folder page: unit tests of the renderer, then the page in a real Chromium.

The browser half serves the rendered page with a stand-in POST handler (it echoes the
posted ``path`` values as a text attachment), so it proves the page itself: ticking,
"select all", the live total, and that the form posts exactly what was ticked, with
and without JavaScript.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from browser import (
    DOWNLOAD_SELECTED,
    download,
    download_selection,
    download_whole_folder,
    live_server,
    open_page,
    tick,
)
from webob import Request, Response

from zipwsgi.app.listing import LISTING_CSP, ListingEntry, human_size, render_listing

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from playwright.sync_api import Browser

MTIME = 1_714_564_800.0  # 2024-05-01 12:00:00 UTC


def render(
    entries: Iterable[ListingEntry],
    *,
    title: str = "share",
    breadcrumbs: Sequence[tuple[str, str]] = (("share", "/share/"),),
    form_action: str = "/share/",
    zip_href: str = "/share.zip",
) -> str:
    return render_listing(
        title=title,
        breadcrumbs=list(breadcrumbs),
        entries=list(entries),
        form_action=form_action,
        zip_href=zip_href,
    )


class Page(HTMLParser):
    """Collects what the tests look at: attributes of chosen tags, and all text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]

    @property
    def boxes(self) -> list[dict[str, str | None]]:
        return self.find("input", name="path")


# --- human_size --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1280, "1.3 KiB"),  # 1.25 rounds half up, as in the page's script
        (1536, "1.5 KiB"),
        (1024 * 1024 - 1, "1.0 MiB"),  # would read "1024.0 KiB" without carrying
        (5 * 1024**3, "5.0 GiB"),
        (3 * 1024**5, "3.0 PiB"),
        (2048 * 1024**5, "2048.0 PiB"),
    ],
)
def test_human_size(n: int, text: str) -> None:
    assert human_size(n) == text


# --- render_listing ----------------------------------------------------------------

NASTY = [
    '<script>alert("x")</script>.txt',
    "Tom & Jerry's \"best\".txt",
    "Отчёт.txt",
    "café",
    "$title ${rows}.txt",  # template placeholders inside data stay data
]


def test_names_are_escaped_and_round_trip() -> None:
    entries = [ListingEntry(n, "", n == "café", 1, MTIME) for n in NASTY]
    html = render(entries)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;.txt" in html
    assert "Отчёт.txt" in html and "café" in html  # non-ASCII kept as text, not mangled
    page = Page(html)
    assert [box["value"] for box in page.boxes] == NASTY
    assert "Select file $title ${rows}.txt" in "".join(page.text)


def test_title_and_hrefs_are_escaped() -> None:
    html = render(
        [ListingEntry("a", 'a"/?x=1&y=<2>', True, 1, MTIME)],
        title='<b>"t"</b>',
        breadcrumbs=[("root", "/?a=1&b=2"), ('<b>"t"</b>', "")],
        form_action='/f"&',
        zip_href="/z.zip?a=1&b=2",
    )
    page = Page(html)
    assert "<b>" not in html
    assert page.find("a", href='a"/?x=1&y=<2>')
    assert page.find("a", href="/?a=1&b=2")
    assert page.find("form", action='/f"&', method="post")
    assert page.find("a", href="/z.zip?a=1&b=2", id="download-all")


def test_unencodable_names_do_not_break_the_page() -> None:
    html = render([ListingEntry("bad\udcff.txt", "", False, 1, MTIME)])
    html.encode("utf-8")
    assert "bad?.txt" in html


def test_breadcrumbs_link_all_but_the_current_folder() -> None:
    crumbs = [("share", "/share/"), ("docs", "/share/docs/"), ("guide", "/share/docs/guide/")]
    page = Page(render([], breadcrumbs=crumbs, title="guide"))
    nav = re.search(r'<ol class="crumbs">(.*?)</ol>', render([], breadcrumbs=crumbs)).group(1)
    assert nav.count("<li>") == 3
    assert page.find("a", href="/share/") and page.find("a", href="/share/docs/")
    assert not page.find("a", href="/share/docs/guide/")
    assert page.find("span", **{"aria-current": "page"})


def test_rows_sizes_dates_and_links() -> None:
    entries = [
        ListingEntry("docs", "docs/", True, 3 * 1024 * 1024, MTIME),
        ListingEntry("a.txt", "a.txt", False, 1536, MTIME),
        ListingEntry("b.bin", "", False, None, MTIME),
    ]
    html = render(entries)
    page = Page(html)
    assert [b.get("data-size") for b in page.boxes] == [str(3 * 1024 * 1024), "1536", None]
    assert page.find("a", href="docs/") and page.find("a", href="a.txt")
    assert "docs/</a>" in html  # folders read as folders
    assert "3.0 MiB" in html and "1.5 KiB" in html and 'title="1,536 bytes"' in html
    assert page.find("time", datetime="2024-05-01T12:00:00Z")
    assert "2024-05-01 12:00" in html
    assert "1 folder · 2 files · at least 3.0 MiB" in html


def test_every_checkbox_has_a_label() -> None:
    html = render(
        [ListingEntry("a.txt", "", False, 1, MTIME), ListingEntry("d", "d/", True, 1, MTIME)]
    )
    for name, kind in (("a.txt", "file"), ("d", "folder")):
        assert re.search(
            rf'<label><input type="checkbox" name="path" value="{re.escape(name)}"[^>]*>'
            rf'<span class="sr-only">Select {kind} {re.escape(name)}</span></label>',
            html,
        )
    assert "Select all" in html


def test_dates_out_of_range_show_a_dash() -> None:
    html = render([ListingEntry("a", "", False, 1, 1e20)])
    assert "<time" not in html


def test_empty_folder() -> None:
    html = render([])
    assert "This folder is empty." in html and "Empty folder" in html
    assert Page(html).boxes == []


def test_self_contained_with_a_policy_pinned_to_its_own_code() -> None:
    html = render([ListingEntry("a", "a/", True, 1, MTIME)])
    assert "src=" not in html and "<link" not in html and "@import" not in html
    assert "http://" not in html and "https://" not in html
    page = Page(html)
    assert page.find("meta", **{"http-equiv": "Content-Security-Policy", "content": LISTING_CSP})
    for tag in ("style", "script"):
        (body,) = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in LISTING_CSP
    assert "default-src 'none'" in LISTING_CSP


# --- in a real browser -------------------------------------------------------------

ENTRIES = [
    ListingEntry("docs", "docs/", True, 3 * 1024 * 1024, MTIME),
    ListingEntry("café", "caf%C3%A9/", True, 2048, MTIME),
    ListingEntry("Отчёт.txt", "", False, 1024, MTIME),
    ListingEntry('Tom & "Jerry" <1>.txt', "", False, 512, MTIME),
    ListingEntry("empty.txt", "", False, 0, MTIME),
]
TOTAL = sum(e.size or 0 for e in ENTRIES)


def echo_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The page, plus stand-ins for the real app's downloads: a POST answers with the
    posted ``path`` values, one per line, as an attachment; the whole-folder link
    answers with a fixed attachment."""
    request = Request(environ)
    if request.path_info == "/share.zip":
        response = Response(body=b"whole folder", content_type="application/zip")
        response.content_disposition = 'attachment; filename="share.zip"'
    elif request.method == "POST":
        posted = "\n".join(request.POST.getall("path"))
        response = Response(text=posted, content_type="text/plain", charset="utf-8")
        response.content_disposition = 'attachment; filename="selection.txt"'
    else:
        html = render(ENTRIES, form_action="/", zip_href="/share.zip")
        response = Response(text=html, content_type="text/html", charset="utf-8")
    return response(environ, start_response)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with live_server(echo_app) as base:
        yield base


def posted(path: Path) -> list[str]:
    return path.read_text("utf-8").split("\n")


@pytest.mark.browser
def test_tick_two_and_download(chromium: Browser, url: str, tmp_path: Path) -> None:
    picked = ["Отчёт.txt", 'Tom & "Jerry" <1>.txt']
    saved = download_selection(chromium, url, picked, tmp_path)
    assert saved.name == "selection.txt"
    assert posted(saved) == picked


@pytest.mark.browser
def test_download_works_without_javascript(chromium: Browser, url: str, tmp_path: Path) -> None:
    picked = ["docs", "café"]
    saved = download_selection(chromium, url, picked, tmp_path, java_script_enabled=False)
    assert posted(saved) == picked


@pytest.mark.browser
def test_download_whole_folder_link(chromium: Browser, url: str, tmp_path: Path) -> None:
    saved = download_whole_folder(chromium, url, tmp_path)
    assert saved.name == "share.zip" and saved.read_bytes() == b"whole folder"


@pytest.mark.browser
def test_select_all_and_live_total(chromium: Browser, url: str, tmp_path: Path) -> None:
    with open_page(chromium) as page:
        page.goto(url)
        status = page.locator("#selection")
        button = page.get_by_role("button", name=DOWNLOAD_SELECTED)
        select_all = page.get_by_role("checkbox", name="Select all")
        boxes = page.locator('input[name="path"]')

        assert status.inner_text() == "Tick entries, then download them as one zip."
        assert button.is_disabled()

        tick(page, ["docs", "Отчёт.txt"])
        assert status.inner_text() == "2 items selected · " + human_size(3 * 1024 * 1024 + 1024)
        assert select_all.evaluate("box => box.indeterminate")

        select_all.check()
        assert all(boxes.nth(i).is_checked() for i in range(boxes.count()))
        assert status.inner_text() == f"{len(ENTRIES)} items selected · {human_size(TOTAL)}"
        assert button.is_enabled()

        # A click on a row (not on a link) toggles it.
        page.locator("tr", has_text="empty.txt").locator("td.num").click()
        assert not boxes.nth(len(ENTRIES) - 1).is_checked()
        assert status.inner_text() == f"{len(ENTRIES) - 1} items selected · {human_size(TOTAL)}"

        # Some ticked: the box is "mixed"; a click ticks everything, the next clears all.
        assert select_all.evaluate("box => box.indeterminate")
        select_all.click()
        assert status.inner_text() == f"{len(ENTRIES)} items selected · {human_size(TOTAL)}"
        select_all.click()
        assert not any(boxes.nth(i).is_checked() for i in range(boxes.count()))
        assert button.is_disabled()

        tick(page, ["café"])
        assert status.inner_text() == "1 item selected · 2.0 KiB"
        saved = download(page, button.click, tmp_path)
        assert posted(saved) == ["café"]
