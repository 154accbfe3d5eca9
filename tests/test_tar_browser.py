"""Choosing tar or tar.gz on the folder page, in headless Chromium on a live server.

A person picks the format in the "Format" choice beside the download button (a plain
``<select>`` inside the form, so it works without JavaScript too), or follows the
"also as tar · tar.gz" links beside "Download whole folder". The saved file must keep
the suggested name and hold exactly what was picked, read by Python's tarfile and GNU
tar. ``open_page`` fails a test on any console error (CSP violations included).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pytest
from browser import DOWNLOAD_SELECTED, download, live_server, open_page, tick
from readers import _compare
from share_tree import make_share
from tar_readers import check_gnu_tar_file, check_tarfile

from zipwsgi import ZipApp

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser

PICKED = {"README.txt": b"hello\n", "café/": None, "café/menu.txt": b"coffee 2.50\ntea 2.00\n"}
DOCS = {"docs/": None, "docs/a.txt": b"A" * 1000, "docs/b/": None, "docs/b/c.txt": b"C" * 300}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with live_server(ZipApp(make_share(tmp_path_factory.mktemp("tar-browser")))) as base:
        yield base


def read_back(path: Path, expected: dict[str, Optional[bytes]]) -> None:
    """tarfile (random access and streaming) and GNU tar agree with ``expected``."""
    check_tarfile(path, expected)
    check_tarfile(path, expected, streaming=True)
    check_gnu_tar_file(path, expected)


def pick_and_download(
    chromium: Browser, page_url: str, names: list[str], fmt: str, dest: Path, **options: Any
) -> Path:
    with open_page(chromium, **options) as page:
        page.goto(page_url)
        tick(page, names)
        page.get_by_label("Format").select_option(fmt)
        button = page.get_by_role("button", name=DOWNLOAD_SELECTED)
        return download(page, button.click, dest)


@pytest.mark.parametrize(("fmt", "gzip"), [("tar", False), ("tar.gz", True)])
def test_pick_a_format_tick_two_and_download(
    chromium: Browser, url: str, tmp_path: Path, fmt: str, gzip: bool
) -> None:
    saved = pick_and_download(chromium, url, ["README.txt", "café"], fmt, tmp_path)
    assert saved.name == f"share.{fmt}"
    if gzip:
        assert saved.read_bytes()[:2] == b"\x1f\x8b"
    else:
        assert saved.stat().st_size % 10240 == 0
    read_back(saved, PICKED)


@pytest.mark.parametrize("fmt", ["tar", "tar.gz"])
def test_the_format_choice_works_without_javascript(
    chromium: Browser, url: str, tmp_path: Path, fmt: str
) -> None:
    saved = pick_and_download(chromium, url + "docs/", ["a.txt", "b"], fmt, tmp_path,
                              java_script_enabled=False)
    assert saved.name == f"docs.{fmt}"
    read_back(saved, {"a.txt": b"A" * 1000, "b/": None, "b/c.txt": b"C" * 300})


def test_zip_stays_the_default(chromium: Browser, url: str, tmp_path: Path) -> None:
    with open_page(chromium) as page:
        page.goto(url + "docs/")
        assert page.get_by_label("Format").input_value() == "zip"
        tick(page, ["a.txt"])
        saved = download(page, page.get_by_role("button", name=DOWNLOAD_SELECTED).click,
                         tmp_path)
    assert saved.name == "a.txt.zip"  # one entry picked: named after it


@pytest.mark.parametrize("fmt", ["tar", "tar.gz"])
def test_whole_folder_links_per_format(
    chromium: Browser, url: str, tmp_path: Path, fmt: str
) -> None:
    with open_page(chromium, java_script_enabled=fmt == "tar") as page:
        page.goto(url)
        page.get_by_role("link", name="docs/", exact=True).click()
        page.wait_for_url(url + "docs/")
        link = page.get_by_role("link", name=fmt, exact=True)
        assert link.get_attribute("title") == f"Download whole folder as {fmt}"
        saved = download(page, link.click, tmp_path)
    assert saved.name == f"docs.{fmt}"
    read_back(saved, DOCS)


def test_two_formats_one_after_the_other(chromium: Browser, url: str, tmp_path: Path) -> None:
    """After a download the page stays; a second pick in another format just works."""
    with open_page(chromium) as page:
        page.goto(url + "docs/")
        tick(page, ["a.txt"])
        button = page.get_by_role("button", name=DOWNLOAD_SELECTED)
        page.get_by_label("Format").select_option("tar")
        first = download(page, button.click, tmp_path)
        page.get_by_label("Format").select_option("tar.gz")
        second = download(page, button.click, tmp_path)
    assert (first.name, second.name) == ("a.txt.tar", "a.txt.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(second.read_bytes()), mode="r:gz") as archive:
        got = {info.name: archive.extractfile(info).read()  # type: ignore[union-attr]
               for info in archive}
    _compare("tarfile", got, {"a.txt": b"A" * 1000})
