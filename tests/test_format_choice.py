"""The one place format names become streams (zipwsgi.engine.choice), and the folder
page's format controls (render_listing's ``formats``): fast unit tests."""

from __future__ import annotations

import pytest

from zipwsgi import TarStream, ZipStream
from zipwsgi.app.listing import ListingEntry, render_listing
from zipwsgi.engine.choice import (
    FORMATS,
    archive_stem,
    format_name,
    format_of_filename,
    new_archive,
)


@pytest.mark.parametrize(
    ("text", "name"),
    [("zip", "zip"), ("ZIP", "zip"), (" tar ", "tar"), ("tar.gz", "tar.gz"),
     ("TGZ", "tar.gz"), ("Tar.Gz", "tar.gz")],
)
def test_format_names(text: str, name: str) -> None:
    assert format_name(text) == name


@pytest.mark.parametrize("text", ["", "7z", "tar.bz2", "gzip", "zipx", "tar gz"])
def test_unknown_format_names(text: str) -> None:
    with pytest.raises(ValueError, match="choose zip, tar or tar.gz"):
        format_name(text)


@pytest.mark.parametrize(
    ("name", "fmt", "stem"),
    [("a.zip", "zip", "a"), ("a.TAR", "tar", "a"), ("a.tar.gz", "tar.gz", "a"),
     ("a.tgz", "tar.gz", "a"), ("a.b.tar", "tar", "a.b"), ("a.gz", None, "a.gz"),
     ("tar", None, "tar"), (".tar", "tar", ""), ("a.tar.zip", "zip", "a.tar")],
)
def test_suffixes(name: str, fmt: str | None, stem: str) -> None:
    assert format_of_filename(name) == fmt
    assert archive_stem(name) == stem


def test_new_archive_gives_each_format_its_stream_and_options() -> None:
    zipped = new_archive("zip", compression="deflate", level=3, charset="cp866",
                         precompute_crc=True)
    assert isinstance(zipped, ZipStream)
    assert (zipped.compression, zipped.level, zipped.precompute_crc) == ("deflate", 3, True)
    tar = new_archive("tar", compression="deflate", level=3, charset="cp866",
                      precompute_crc=True)
    assert isinstance(tar, TarStream) and not tar.gzip and tar.level is None
    tgz = new_archive("tgz", level=3)
    assert isinstance(tgz, TarStream) and tgz.gzip and tgz.level == 3
    assert [new_archive(fmt).extension for fmt in FORMATS] == [".zip", ".tar", ".tar.gz"]


ENTRY = ListingEntry("a.txt", "/a.txt", False, 3, 0.0)


def page(**kwargs: object) -> str:
    return render_listing(title="t", breadcrumbs=[("t", "/")], entries=[ENTRY],
                          form_action="/", zip_href="/t.zip", **kwargs)  # type: ignore[arg-type]


def test_without_formats_the_page_offers_zip_only() -> None:
    html = page()
    assert "<select" not in html and 'class="also"' not in html
    assert ">Download as zip</button>" in html and "as one zip." in html


def test_formats_add_a_choice_and_links_escaped() -> None:
    html = page(formats=[("tar", "/t.tar"), ("tar.gz", '/t/?download&format=tar.gz"')])
    assert ('<select name="format" id="format"><option value="zip" selected>zip</option>'
            '<option value="tar">tar</option><option value="tar.gz">tar.gz</option>'
            "</select>") in html
    assert '<a href="/t.tar" title="Download whole folder as tar">tar</a>' in html
    assert 'href="/t/?download&amp;format=tar.gz&quot;"' in html
    assert ">Download</button>" in html and "as one archive." in html
