"""The folder page: one self-contained HTML document listing a folder's entries.

The standalone app shows this page to browsers so people can pick what to download.
This module only renders; it knows nothing about HTTP, the file system or archive
formats, so the caller decides what the entries are, in which order, and where every
link points::

    html = render_listing(
        title="photos",
        breadcrumbs=[("share", "/share/"), ("photos", "/share/photos/")],
        entries=[ListingEntry("2024", "2024/", True, 31_457_280, 1714560000.0)],
        form_action="/share/photos/",
        zip_href="/share/photos.zip",
        formats=[("tar", "/share/photos.tar"), ("tar.gz", "/share/photos.tar.gz")],
    )

What the page relies on and offers:

- The download works without JavaScript: the form POSTs one ``path`` field per ticked
  entry (the entry's ``name``) to ``form_action``, and, when the page offers more
  formats than zip, a ``format`` field from a plain ``<select>`` beside the button.
- With JavaScript: "select all", the live count and total size of the selection (from
  each checkbox's ``data-size``), and a click anywhere on a row toggles it.
- Nothing is fetched from anywhere: CSS, script and icons are inline, and the page
  carries a Content-Security-Policy (:data:`LISTING_CSP`) that allows only its own
  inline style and script (pinned by hash) and form posts to its own origin.

Security note: every caller-supplied string is HTML-escaped, but hrefs are used as given,
so they must already be percent-encoded, same-origin URLs the caller built itself.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources

__all__ = ["LISTING_CSP", "ListingEntry", "human_size", "render_listing"]

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


@dataclass(frozen=True)
class ListingEntry:
    """One row of the page.

    ``name`` is the entry's name inside the listed folder; it is what the form posts as
    ``path`` when the row is ticked. ``href`` is where the name links: a folder's own
    page, a file's URL, or ``""`` for a file shown without a link. ``size`` is a file's
    length, or a folder's recursive total, or ``None`` when unknown. ``mtime`` is seconds
    since the epoch.
    """

    name: str
    href: str
    is_dir: bool
    size: int | None
    mtime: float


def human_size(n: int) -> str:
    """Format a byte count for people: ``"512 B"``, ``"1.5 KiB"``, ``"3.0 GiB"``.

    The page's script formats the selection total with the same arithmetic (round half
    up to tenths), so an entry shows the same text in its row and as a total.
    """
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in _UNITS:
        value /= 1024
        tenths = math.floor(value * 10 + 0.5)
        if tenths < 10240 or unit == _UNITS[-1]:
            return f"{tenths // 10}.{tenths % 10} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def _text(value: str) -> str:
    """Escape for HTML text and quoted attributes.

    File names that were not valid UTF-8 arrive with lone surrogates, which cannot be
    encoded in the page at all; they show as ``?`` rather than breaking the whole page.
    """
    value = value.encode("utf-8", "replace").decode("utf-8")
    return html.escape(value, quote=True)


def _utc(mtime: float) -> tuple[str, str]:
    """Return (machine, human) forms of a timestamp, or empty strings if out of range."""
    try:
        when = datetime.fromtimestamp(mtime, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return "", ""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ"), when.strftime("%Y-%m-%d %H:%M")


def _load_template() -> str:
    return resources.files(__package__).joinpath("templates/listing.html").read_text("utf-8")


def _csp_hash(template: str, tag: str) -> str:
    """Hash the one inline ``<tag>`` so the policy can allow exactly it, and nothing else."""
    body = re.search(rf"<{tag}>(.*?)</{tag}>", template, re.DOTALL)
    assert body is not None, f"listing template lost its <{tag}>"
    digest = hashlib.sha256(body.group(1).encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


_TEMPLATE_TEXT = _load_template()
_TEMPLATE = string.Template(_TEMPLATE_TEXT)

#: The policy the page declares in a ``<meta>`` tag. A server may also send it as a
#: ``Content-Security-Policy`` header (adding e.g. ``frame-ancestors 'none'``, which a
#: ``<meta>`` policy cannot express).
LISTING_CSP = (
    "default-src 'none'; "
    f"style-src {_csp_hash(_TEMPLATE_TEXT, 'style')}; "
    f"script-src {_csp_hash(_TEMPLATE_TEXT, 'script')}; "
    "form-action 'self'; base-uri 'none'"
)


def _breadcrumbs(crumbs: Sequence[tuple[str, str]]) -> str:
    items = []
    for i, (label, href) in enumerate(crumbs):
        if i == len(crumbs) - 1:
            items.append(f'<li><span aria-current="page">{_text(label)}</span></li>')
        else:
            items.append(f'<li><a href="{_text(href)}">{_text(label)}</a></li>')
    return "".join(items)


def _row(entry: ListingEntry) -> str:
    name = _text(entry.name)
    kind = "dir" if entry.is_dir else "file"
    shown = name + "/" if entry.is_dir else name
    icon = f'<svg class="icon icon-{kind}" aria-hidden="true"><use href="#i-{kind}"/></svg>'
    if entry.href:
        label = f'<a href="{_text(entry.href)}">{icon}{shown}</a>'
    else:
        label = f"{icon}{shown}"
    if entry.size is None:
        data_size, size = "", '<td class="num">\u2014</td>'
    else:
        data_size = f' data-size="{entry.size}"'
        exact = f"{entry.size:,} byte" + ("" if entry.size == 1 else "s")
        size = f'<td class="num" title="{exact}">{human_size(entry.size)}</td>'
    iso, shown_date = _utc(entry.mtime)
    date = f'<time datetime="{iso}">{shown_date}</time>' if iso else "\u2014"
    what = "folder" if entry.is_dir else "file"
    return (
        f'    <tr class="{kind}">'
        f'<td class="check"><label><input type="checkbox" name="path" value="{name}"'
        f'{data_size}><span class="sr-only">Select {what} {name}</span></label></td>'
        f'<td class="name">{label}</td>'
        f"{size}"
        f'<td class="date">{date}</td>'
        "</tr>"
    )


def _summary(entries: Sequence[ListingEntry]) -> str:
    folders = sum(1 for e in entries if e.is_dir)
    files = len(entries) - folders
    if not entries:
        return "Empty folder"
    parts = []
    if folders:
        parts.append(f"{folders} folder" + ("" if folders == 1 else "s"))
    if files:
        parts.append(f"{files} file" + ("" if files == 1 else "s"))
    known = [e.size for e in entries if e.size is not None]
    if known:
        prefix = "at least " if len(known) < len(entries) else ""
        parts.append(prefix + human_size(sum(known)))
    return " \u00b7 ".join(parts)


def _format_links(formats: Sequence[tuple[str, str]]) -> str:
    """The "also as tar · tar.gz" links: one per further format of the whole folder."""
    if not formats:
        return ""
    links = " \u00b7 ".join(
        f'<a href="{_text(href)}" title="Download whole folder as {_text(name)}">'
        f"{_text(name)}</a>"
        for name, href in formats
    )
    return f'<span class="also">also as {links}</span>'


def _format_choice(formats: Sequence[tuple[str, str]]) -> str:
    """The ``format`` select posted with the selection: zip (the default), then the rest."""
    if not formats:
        return ""
    options = "".join(
        f'<option value="{_text(name)}">{_text(name)}</option>' for name, _ in formats
    )
    return (
        '<label class="format">Format <select name="format" id="format">'
        f'<option value="zip" selected>zip</option>{options}</select></label>'
    )


def render_listing(
    *,
    title: str,
    breadcrumbs: Sequence[tuple[str, str]],
    entries: Sequence[ListingEntry],
    form_action: str,
    zip_href: str,
    formats: Sequence[tuple[str, str]] = (),
) -> str:
    """Render the page for one folder and return it as text (encode it as UTF-8).

    ``breadcrumbs`` are ``(label, href)`` pairs from the root down to this folder; the
    last one is the current page and is not linked. ``entries`` are shown in the order
    given (sorting is the caller's choice). ``form_action`` receives the POST of the
    ticked entries; ``zip_href`` downloads the whole folder. ``formats`` are the other
    archive formats offered, as ``(name, whole-folder href)`` pairs (``("tar",
    "/share.tar")``): each gets a link beside "Download whole folder", and the form a
    "Format" choice (zip first and selected) posted as ``format=<name>``. Without them
    the page offers zip only, as "Download as zip".
    """
    if entries:
        rows = "\n".join(_row(e) for e in entries)
    else:
        rows = '    <tr><td class="empty" colspan="4">This folder is empty.</td></tr>'
    return _TEMPLATE.substitute(
        csp=LISTING_CSP,
        title=_text(title),
        breadcrumbs=_breadcrumbs(breadcrumbs),
        summary=_summary(entries),
        zip_href=_text(zip_href),
        format_links=_format_links(formats),
        form_action=_text(form_action),
        rows=rows,
        hint="Tick entries, then download them as one " + ("archive." if formats else "zip."),
        format_choice=_format_choice(formats),
        button_label="Download" if formats else "Download as zip",
    )
