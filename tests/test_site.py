"""
The built docs site shows what a reader came for: checked in the HTML itself.

Run after `mkdocs build --strict --site-dir site` (`nox -s docs` and CI do both);
skipped when no site has been built. ANYIO_JOINSET_SITE names another site
directory.
"""

from __future__ import annotations

import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import anyio_joinset

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("ANYIO_JOINSET_SITE", ROOT / "site"))
INCLUDE = re.compile(r'^--8<-- "(examples/[^"]+)"$', re.MULTILINE)
HOWTOS = sorted((ROOT / "docs" / "howto").glob("*.md"))

pytestmark = pytest.mark.skipif(
    not (SITE / "index.html").is_file(), reason=f"no docs site built in {SITE}"
)


class _Text(HTMLParser):
    """The text of a page as a reader sees it: tags dropped, scripts skipped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        if tag in {"script", "style"}:
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def page(path: str) -> str:
    """The HTML of a page of the site, by its path from the site's root."""
    return (SITE / path / "index.html").read_text(encoding="utf-8")


def text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    return "".join(parser.parts)


def all_pages() -> list[Path]:
    return sorted(SITE.rglob("*.html"))


@pytest.mark.parametrize("howto", HOWTOS, ids=[p.stem for p in HOWTOS])
def test_each_howto_page_shows_its_example(howto: Path) -> None:
    """Each how-to page holds its example's code, as the reader copies it."""
    includes = INCLUDE.findall(howto.read_text(encoding="utf-8"))
    assert includes, f"{howto.name} includes no example"
    shown = text(page(f"howto/{howto.stem}"))
    for include in includes:
        source = (ROOT / include).read_text(encoding="utf-8")
        first_lines = [line for line in source.splitlines() if line.strip()][:4]
        for line in first_lines:
            assert line in shown, f"{include}: {line!r} not on the page"
        last = [line for line in source.splitlines() if line.strip()][-1]
        assert last in shown, f"{include}: its last line is not on the page"


def test_no_page_shows_a_snippet_directive() -> None:
    """No page shows an include directive instead of what it includes."""
    for path in all_pages():
        assert not re.search(r"-\s*-\s*8\s*<", text(path.read_text(encoding="utf-8"))), path


@pytest.mark.parametrize("name", anyio_joinset.__all__)
def test_reference_renders_every_public_name(name: str) -> None:
    """Every name of __all__ has its entry in the API reference, with every public member."""
    reference = page("reference")
    assert f'id="anyio_joinset.{name}"' in reference
    obj = getattr(anyio_joinset, name)
    for member in vars(obj):
        if not member.startswith("_") and not isinstance(vars(obj)[member], type):
            assert f'id="anyio_joinset.{name}.{member}"' in reference, member


def test_reference_shows_public_bases_linked() -> None:
    """A class's bases are public and linked: no private engine, AnyIO's TaskCancelled to AnyIO."""
    # Each public name's entry, up to the next one's.
    entries = re.split(r'(?= id="anyio_joinset\.\w+")', page("reference"))
    bases = {}
    for entry in entries:
        found = re.match(r' id="anyio_joinset\.(\w+)"', entry)
        line = re.search(r'<p class="doc doc-class-bases">(.*?)</p>', entry, re.DOTALL)
        if found and line:
            bases[found[1]] = line[1]
    with_bases = {
        name
        for name in anyio_joinset.__all__
        if isinstance(getattr(anyio_joinset, name), type)
        and getattr(anyio_joinset, name).__bases__ != (object,)
    }
    assert set(bases) == with_bases
    for name, markup in bases.items():
        shown = " ".join(text(markup).split())
        assert "Engine" not in shown, name
        for code in re.findall(r"<code>(.*?)</code>", markup, re.DOTALL):
            assert re.search(r'<a [^>]*href="https://', code), (name, code)
    assert " ".join(text(bases["JoinSet"]).split()) == "Bases: Generic[T]"
    assert " ".join(text(bases["JoinMap"]).split()) == "Bases: Generic[K, T]"
    assert " ".join(text(bases["TaskCancelled"]).split()) == "Bases: anyio.TaskCancelled"
    assert (
        'href="https://anyio.readthedocs.io/en/stable/api.html#anyio.TaskCancelled"'
        in bases["TaskCancelled"]
    )


def test_reference_renders_the_backends_module() -> None:
    """The public anyio_joinset.backends module is documented too."""
    reference = page("reference")
    for name in ("backends", "backends.BACKENDS", "backends.run"):
        assert f'id="anyio_joinset.{name}"' in reference


def test_no_page_shows_raw_sphinx_roles() -> None:
    """Docstring cross-references render as links or code, never as :meth:`...` text."""
    role = re.compile(r":(?:py:)?(?:meth|func|class|attr|exc|data|obj|mod):`")
    for path in all_pages():
        assert not role.search(text(path.read_text(encoding="utf-8"))), path


def test_home_page_links_land_on_the_classes() -> None:
    """The home page's JoinHandle and Outcome links point at their reference entries."""
    home = (SITE / "index.html").read_text(encoding="utf-8")
    for name in ("JoinHandle", "Outcome"):
        assert f'href="reference/#anyio_joinset.{name}"' in home


def test_benchmarks_page_shows_the_chart() -> None:
    """The benchmarks page has its chart, and the site serves the file."""
    benchmarks = page("benchmarks")
    sources = re.findall(r'<img [^>]*src="([^"]+)"', benchmarks)
    assert sources
    for source in sources:
        assert (SITE / "benchmarks" / html.unescape(source)).resolve().is_file(), source


def test_concepts_page_draws_the_life_of_a_task() -> None:
    """The concepts page holds the diagram of a task's life, with every stage and abort."""
    concepts = page("concepts")
    diagrams = re.findall(r'<pre class="mermaid"><code>(.*?)</code></pre>', concepts, re.DOTALL)
    assert len(diagrams) == 1
    diagram = html.unescape(diagrams[0])
    for stage in ("spawn", "slot", "rate turn", "running", "finished", "handed out", "abort"):
        assert stage in diagram, stage


def test_guarantees_page_keeps_every_rule_number() -> None:
    """The user's page of guarantees cites S1 to S20, each once as a heading item."""
    guarantees = text(page("API"))
    for number in range(1, 21):
        assert re.search(rf"\bS{number} ", guarantees), f"S{number}"
    assert "You may add to it" not in guarantees  # the implementers' wording
