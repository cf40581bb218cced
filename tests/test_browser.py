"""
The built docs site, as a reader's browser shows it: headless Chromium, every page.

tests/test_site.py reads the HTML; this test looks at what the browser draws from
it. The site is served from 127.0.0.1 under the path of mkdocs.yml's ``site_url``
(as it will be deployed, so the 404 page's absolute links are checked where they
lead), and every other host is unreachable: the browser's proxy is this test's
server, which refuses; what a page asked for is read from the browser's own
Network events, its workers' included. The pages are found in the built site, so
a page added later is checked without touching this file. On each page: no
console error or uncaught exception, no request for a host but 127.0.0.1, every
Mermaid block drawn as an SVG, every included example's opening lines on screen
in a code block (and every how-to page has one); then a screenshot of the page
goes to ``site-screenshots/`` beside the site (gitignored, not part of the site).
The search box and the API reference get checks of their own, as does a missing
page.

Run after `mkdocs build --strict --site-dir site` (`nox -s docs` does both and
installs Chromium from Debian's packages if it is missing). Outside nox the test
skips when no site is built or no Chromium is found; with
ANYIO_JOINSET_BROWSER=required (as `nox -s docs` sets it) either is a failure.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

import anyio_joinset
from browser import Chromium, find_chromium

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("ANYIO_JOINSET_SITE", ROOT / "site")).resolve()
SCREENSHOTS = SITE.parent / f"{SITE.name}-screenshots"
REQUIRED = os.environ.get("ANYIO_JOINSET_BROWSER") == "required"
INCLUDE = re.compile(r'^--8<-- "(examples/[^"]+)"$', re.MULTILINE)
SITE_URL = re.compile(r"^site_url:\s*(\S+)", re.MULTILINE)


def site_prefix() -> str:
    """The path the site is served under: that of mkdocs.yml's site_url.

    Without a site_url, a path the site cannot know: mkdocs then writes the 404
    page's links from the host's root, which is wrong wherever the site is
    published below it (a project's GitHub Pages), and the 404 test says so.
    """
    found = SITE_URL.search((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    path = urlsplit(found[1]).path if found else "/published-somewhere/"
    return path if path.endswith("/") else f"{path}/"


def built_pages() -> list[str]:
    """Every page of the built site, as its directory from the site's root ("" for home)."""
    pages = sorted(path.parent.relative_to(SITE).as_posix() for path in SITE.rglob("index.html"))
    return ["" if page == "." else page for page in pages]


if not (SITE / "index.html").is_file():
    pytestmark = pytest.mark.skipif(not REQUIRED, reason=f"no docs site built in {SITE}")
PAGES = built_pages() if SITE.is_dir() else []


# -- the server: the site on 127.0.0.1, and the proxy that keeps the browser in ------


class Handler(BaseHTTPRequestHandler):
    """The built site under the prefix; a missing page gets the site's 404.html."""

    def __init__(self, *args: Any, prefix: str, **kwargs: Any) -> None:
        self.prefix = prefix
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _refuse(self) -> None:
        # A request for another host, sent to the browser's proxy: this server.
        self.send_error(HTTPStatus.FORBIDDEN, "no host but 127.0.0.1")

    do_CONNECT = do_POST = _refuse  # noqa: N815

    def do_GET(self) -> None:
        if not self.path.startswith("/"):
            self._refuse()
            return
        path = unquote(urlsplit(self.path).path)
        relative = path.removeprefix(self.prefix) if path.startswith(self.prefix) else None
        target = None if relative is None else (SITE / relative).resolve()
        if target is not None and target.is_dir() and SITE in (target, *target.parents):
            if not path.endswith("/"):
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", f"{path}/")
                self.end_headers()
                return
            target /= "index.html"
        if target is None or not target.is_file() or SITE not in target.parents:
            self._send(SITE / "404.html", HTTPStatus.NOT_FOUND)
        else:
            self._send(target, HTTPStatus.OK)

    def _send(self, file: Path, status: HTTPStatus) -> None:
        body = file.read_bytes()
        self.send_response(status)
        self.send_header("Content-Type", mimetypes.guess_type(file.name)[0] or "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Site:
    base: str
    browser: Chromium

    def url(self, page: str) -> str:
        return f"{self.base}{page}/" if page else self.base

    def foreign_requests(self) -> list[str]:
        """What the page and its workers asked of any host but this one, since it loaded."""
        origin = self.base.removesuffix(urlsplit(self.base).path)
        return [
            url
            for url in self.browser.requests()
            if not url.startswith((f"{origin}/", "data:", "blob:"))
        ]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    executable = find_chromium()
    if executable is None:
        msg = (
            "Chromium is not installed: `apt-get install chromium` (nox -s docs does it as "
            "root), or point ANYIO_JOINSET_CHROMIUM at a Chromium or Chrome binary."
        )
        if REQUIRED:
            pytest.fail(msg)
        pytest.skip(msg)
    prefix = site_prefix()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, prefix=prefix))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    browser = Chromium(executable, proxy_port=server.server_address[1])
    try:
        SCREENSHOTS.mkdir(exist_ok=True)
        yield Site(f"http://127.0.0.1:{server.server_address[1]}{prefix}", browser)
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
        thread.join()


# -- loading a page and what went wrong meanwhile ------------------------------------


def console_errors(browser: Chromium) -> list[str]:
    """Errors the page logged or threw (a failed load of any resource included)."""
    found = []
    for event in browser.events:
        params = event.get("params", {})
        if event["method"] == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            thrown = details.get("exception", {}).get("description") or details["text"]
            found.append(thrown.splitlines()[0])  # the stack's first line will do
        elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in {
            "error",
            "assert",
        }:
            found.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            found.append(f"{entry['text']} {entry.get('url', '')}".strip())
    return found


def screenshot(site: Site, name: str, *, full_page: bool = True) -> None:
    path = SCREENSHOTS / f"{name or 'index'}.png".replace("/", "-")
    site.browser.screenshot(path, full_page=full_page)


def source_of(page: str) -> Path | None:
    """The Markdown file a page was built from, if it has one."""
    stem = ROOT / "docs" / (page or "index")
    for candidate in (stem.with_suffix(".md"), stem / "index.md"):
        if candidate.is_file():
            return candidate
    return None


def first_lines(include: str, count: int = 6) -> str:
    """The opening lines of an included file, as one block of text."""
    source = (ROOT / include).read_text(encoding="utf-8")
    return "\n".join(source.splitlines()[:count])


# -- every page ----------------------------------------------------------------------


def test_the_site_has_its_pages() -> None:
    """The page list comes from the built site, and holds the home page, a how-to, the reference."""
    assert "" in PAGES
    assert "reference" in PAGES
    assert any(page.startswith("howto/") for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=[page or "index" for page in PAGES])
def test_page_shows_what_it_promises_from_this_host_alone(site: Site, page: str) -> None:
    """No console error, no other host, diagrams drawn, examples shown; then a screenshot."""
    browser = site.browser
    site.browser.navigate(site.url(page))
    html = (SITE / page / "index.html").read_text(encoding="utf-8")
    diagrams = html.count('<pre class="mermaid">')
    if diagrams:
        # Material swaps each <pre class="mermaid"> for a <div class="mermaid"> holding
        # the drawing, once Mermaid's script has loaded and rendered it.
        try:
            browser.wait_for(
                "document.querySelectorAll('pre.mermaid').length === 0 && "
                f"document.querySelectorAll('div.mermaid').length === {diagrams}",
                timeout=10,
            )
        except TimeoutError:
            pytest.fail(
                f"{page}: {diagrams} Mermaid diagram(s) not drawn in 10 s; console errors: "
                f"{console_errors(browser)}; requests for other hosts: {site.foreign_requests()}"
            )
        assert browser.shadow_svgs("div.mermaid") == [1] * diagrams
        heights = browser.evaluate(
            "[...document.querySelectorAll('div.mermaid')]"
            ".map(d => d.getBoundingClientRect().height)"
        )
        assert all(height > 100 for height in heights), heights
    shown = browser.evaluate("document.querySelector('article').innerText")
    assert "flowchart TD" not in shown, "a Mermaid diagram shows as source text"
    source = source_of(page)
    includes = INCLUDE.findall(source.read_text(encoding="utf-8")) if source else []
    if page.startswith("howto/"):
        assert includes, f"the how-to page {page} includes no example"
    code_blocks = browser.evaluate(
        "[...document.querySelectorAll('article pre')]"
        ".filter(pre => pre.getBoundingClientRect().height > 0).map(pre => pre.innerText)"
    )
    for include in includes:
        opening = first_lines(include)
        assert any(opening in block for block in code_blocks), f"{include} is not on screen"
    screenshot(site, page)
    assert site.foreign_requests() == []
    assert console_errors(browser) == []


# -- the search box, the reference, a missing page ---------------------------------


@pytest.mark.parametrize("query", ["join_next", "spawn_thread"])
def test_search_box_finds(site: Site, query: str) -> None:
    """Typing a method's name into the search box lists pages about it, the first naming it."""
    browser = site.browser
    site.browser.navigate(site.url(""))
    browser.evaluate("document.querySelector('label[for=__search]').click()")
    browser.wait_for("document.activeElement === document.querySelector('.md-search__input')")
    for char in query:
        browser.call("Input.dispatchKeyEvent", type="keyDown", text=char, key=char)
        browser.call("Input.dispatchKeyEvent", type="keyUp", key=char)
    results = browser.wait_for(
        "[...document.querySelectorAll('.md-search-result__item')].map(item => item.innerText)",
        timeout=15,
    )
    assert query in results[0], results[0]
    screenshot(site, f"search-{query}", full_page=False)  # the results, over the page
    assert site.foreign_requests() == []
    assert console_errors(browser) == []


def test_reference_lists_every_public_name(site: Site) -> None:
    """Each name of anyio_joinset.__all__ has a visible entry headed by its name."""
    browser = site.browser
    site.browser.navigate(site.url("reference"))
    for name in anyio_joinset.__all__:
        heading = browser.evaluate(
            f"(() => {{ const e = document.getElementById('anyio_joinset.{name}');"
            " return e && e.getBoundingClientRect().height > 0 ? e.innerText : null })()"
        )
        assert heading is not None, f"{name} has no visible entry"
        assert name in heading, heading
    bases = browser.evaluate(
        "[...document.querySelectorAll('.doc-class-bases')].map(p => p.innerText)"
    )
    assert bases
    for line in bases:
        assert "Engine" not in line, line
    assert site.foreign_requests() == []
    assert console_errors(browser) == []


def test_missing_page_links_back_to_the_site(site: Site) -> None:
    """A missing page shows the site's styled 404 page, and its links lead into the site."""
    browser = site.browser
    site.browser.navigate(site.url("no/such/page"))
    assert "404" in browser.evaluate("document.querySelector('article').innerText")
    # Styled: the theme's stylesheet loaded from the site, though the page is deep.
    assert browser.evaluate("getComputedStyle(document.querySelector('.md-header')).position") in {
        "sticky",
        "fixed",
    }
    home = browser.evaluate("document.querySelector('a.md-header__button.md-logo').href")
    assert home == site.base
    links = browser.evaluate("[...document.querySelectorAll('nav a')].map(a => a.href)")
    assert site.url("concepts") in links
    screenshot(site, "404")
    # The page itself comes with status 404, and says so in the console; nothing else.
    errors = console_errors(browser)
    assert all("404" in error for error in errors), errors
    assert len(errors) <= 1, errors
    assert site.foreign_requests() == []
