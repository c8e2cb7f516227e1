"""The built site: complete, searchable, and self-contained (no script, style or font from elsewhere)."""

from __future__ import annotations

import functools
import http.server
import re
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest
from _cdp import Browser, chromium
from _docs import DOCS, load_hook

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class _Resources(HTMLParser):
    """URLs a page loads (scripts, stylesheets, fonts, images, frames), not the links it shows."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed") and a.get("src"):
            self.urls.append(a["src"] or "")
        if tag == "link" and a.get("href"):
            rel = (a.get("rel") or "").lower()
            if rel not in ("canonical", "alternate", "next", "prev", "author", "license"):
                self.urls.append(a["href"] or "")
        if tag == "object" and a.get("data"):
            self.urls.append(a["data"] or "")
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.inline_styles.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False


def _remote(url: str) -> bool:
    parsed = urlparse(url.strip())
    if parsed.scheme in ("", "data", "blob"):
        return False
    return parsed.hostname not in LOCAL_HOSTS


def _css_urls(css: str) -> list[str]:
    return re.findall(r"""url\(\s*['"]?([^'")]+)""", css) + re.findall(r"""@import\s+['"]([^'"]+)""", css)


def test_pages_load_nothing_from_other_hosts(site: Path) -> None:
    problems = []
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 40
    for page in pages:
        parser = _Resources()
        parser.feed(page.read_text())
        urls = parser.urls + [u for css in parser.inline_styles for u in _css_urls(css)]
        problems += [f"{page.relative_to(site)}: {url}" for url in urls if _remote(url)]
    for css in site.rglob("*.css"):
        problems += [f"{css.relative_to(site)}: {url}" for url in _css_urls(css.read_text()) if _remote(url)]
    assert not problems, "\n".join(problems)


def test_no_web_fonts_and_a_bundled_mermaid(site: Path) -> None:
    for path in [*site.rglob("*.html"), *site.rglob("*.css"), *site.rglob("*.js")]:
        text = path.read_text(errors="replace")
        assert "fonts.googleapis.com" not in text, path
        assert "fonts.gstatic.com" not in text, path
    mermaid = load_hook("mermaid")
    bundled = site / mermaid.TARGET
    assert bundled.is_file()
    assert bundled.stat().st_size > 1_000_000
    for page in site.rglob("*.html"):
        html = page.read_text()
        if 'class="mermaid"' not in html:
            continue
        # the theme fetches mermaid from a CDN unless the global is defined before its bundle runs
        ours = html.find("assets/vendor/mermaid/mermaid.min.js")
        theirs = html.find("assets/javascripts/bundle.")
        assert 0 <= ours < theirs, page


def test_the_site_has_the_whole_map(site: Path) -> None:
    for path in (
        "getting-started",
        "implementing/lifecycle",
        "implementing/movement",
        "implementing/cloning",
        "implementing/importability",
        "operations/systemd",
        "usage-ideas",
        "architecture",
        "protocol",
        "reference/core",
        "migrating",
        "compat",
        "glossary",
        "changelog",
        "contributing",
        "building-docs",
        "cli/paglets-host",
    ):
        assert (site / path / "index.html").is_file(), path
    protocol = (site / "protocol" / "index.html").read_text()
    assert "Movement envelope" in protocol  # proto/PROTOCOL.md, included
    reference = (site / "reference" / "core" / "index.html").read_text()
    assert "dispatch_next" in reference
    assert "on_arrival" in reference
    index = (site / "search" / "search_index.json").read_text()
    assert "dispatch_next" in index
    assert "CloneEvent" in index


def test_included_examples_are_shown_without_markers(site: Path) -> None:
    html = (site / "implementing" / "movement" / "index.html").read_text()
    assert "add_next_destination" in html
    assert "tour ended at" in html
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "--8&lt;--" not in text, page
        assert "[start:" not in text, page


# --- diagrams in a real browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _diagrams(page: str) -> int:
    return len(re.findall(r"^```mermaid", (DOCS / page).read_text(), flags=re.M))


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed")
@pytest.mark.parametrize("page", ["architecture.md", "index.md"])
def test_diagrams_render_in_a_browser_without_the_network(served: str, page: str) -> None:
    """Headless Chromium opens a page: every Mermaid block becomes an SVG diagram, and every request the
    page makes goes to the site itself."""
    expected = _diagrams(page)
    assert expected > 0
    path = "" if page == "index.md" else page.removesuffix(".md") + "/"
    browser = Browser(chromium() or "")
    try:
        browser.open(f"{served}/{path}")
        deadline = time.monotonic() + 30
        counts = None
        while time.monotonic() < deadline:
            counts = browser.evaluate(
                "[document.querySelectorAll('pre.mermaid').length,"
                " document.querySelectorAll('div.mermaid').length, document.readyState]"
            )
            if counts and counts[0] == 0 and counts[1] == expected:
                break
            time.sleep(0.1)
        assert counts is not None
        assert counts[:2] == [0, expected], counts
        # the diagrams live in closed shadow roots: look at them the way DevTools does
        tree = browser.send("DOM.getDocument", {"depth": -1, "pierce": True})
        svgs = _find(tree["root"], "svg", inside="mermaid")
        assert len(svgs) >= expected, svgs
        for node_id in svgs[:expected]:
            svg = browser.send("DOM.getOuterHTML", {"nodeId": node_id})["outerHTML"]
            assert "<g" in svg
            assert "Syntax error" not in svg
        remote = [url for url in browser.requested_urls() if not url.startswith((served, "data:", "blob:"))]
        assert not remote, remote
        assert any(url.endswith("mermaid.min.js") for url in browser.requested_urls())
    finally:
        browser.close()


def _find(node: dict, name: str, *, inside: str, within: bool = False) -> list[int]:
    """nodeIds of ``name`` elements below an element whose class is ``inside`` (shadow roots included)."""
    classes = ""
    attrs = node.get("attributes") or []
    for key, value in zip(attrs[::2], attrs[1::2], strict=True):
        if key == "class":
            classes = value
    within = within or inside in classes.split()
    found = [node["nodeId"]] if within and node.get("nodeName", "").lower() == name else []
    for child in [*(node.get("children") or []), *(node.get("shadowRoots") or [])]:
        found += _find(child, name, inside=inside, within=within)
    return found
