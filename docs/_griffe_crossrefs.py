"""
A Griffe extension that links the API reference's names to their entries.

Docstrings name other parts of the API in the way that reads well in ``help()``
and editors: in backticks (`JoinSet.shutdown`, `shutdown()` inside `JoinSet`) or
with a Sphinx role (:meth:`JoinSet.spawn`), which mkdocstrings would print as raw
text. At docs build time, once the whole package is loaded, each such name that
is an object of ``anyio_joinset`` becomes a Markdown cross-reference to its entry;
a role naming anything else (:func:`functools.partial`) becomes inline code, as
the build reads no other project's inventory. Double-backtick literals, fenced
code and existing links are left alone, and a reST ``::`` at the end of a line
becomes a plain colon. Loaded by ``mkdocs.yml``; ``tests/test_site.py`` checks
that no raw role reaches the site, and ``mkdocs build --strict`` that every link
lands.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:meth|func|class|attr|exc|data|obj|mod):`([~!]?)([^`]+)`")
# `Name`, `Name.member` or `member()`, in single backticks, not in a link already.
CODE = re.compile(r"(?<![`\[])`([A-Za-z_][\w.]*)(\(\))?`(?![`\]])")
FENCE = re.compile(r"^\s*```.*?^\s*```", re.MULTILINE | re.DOTALL)
LITERAL_BLOCK = re.compile(r"(?<=\S)::$", re.MULTILINE)


class CrossRefs(griffe.Extension):
    """Rewrite every docstring of ``anyio_joinset`` once the package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:  # noqa: ARG002
        if pkg.name == "anyio_joinset":
            self.pkg = pkg
            self.public = frozenset(str(name) for name in pkg.exports or ())
            self._walk(pkg)

    def _walk(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = self._rewrite(obj.docstring.value, obj)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member)  # type: ignore[arg-type]

    def _target(self, name: str, obj: griffe.Object, *, bare_ok: bool) -> str | None:
        """The public identifier ``name`` stands for in ``obj``'s docstring, if any."""
        name = name.removeprefix("anyio_joinset.")
        if name.split(".", 1)[0] in self.public:
            try:
                self.pkg[name]
            except KeyError:
                return None
            return f"anyio_joinset.{name}"
        if bare_ok and "." not in name:
            for owner in (obj, obj.parent):
                if (
                    isinstance(owner, griffe.Class)
                    and owner.name in self.public
                    and name in owner.members
                    and not name.startswith("_")
                ):
                    return f"anyio_joinset.{owner.name}.{name}"
        return None

    def _rewrite(self, text: str, obj: griffe.Object) -> str:
        def role(match: re.Match[str]) -> str:
            tilde, name = match.groups()
            shown = name.rsplit(".", 1)[-1] if tilde == "~" else name
            if match.group(0).split("`", 1)[0].endswith(("meth:", "func:")):
                shown += "()"
            target = self._target(name, obj, bare_ok=True)
            return f"[`{shown}`][{target}]" if target else f"`{shown}`"

        def code(match: re.Match[str]) -> str:
            name, call = match.groups()
            # A bare member name links only when written as a call: `shutdown()`.
            target = self._target(name, obj, bare_ok=bool(call))
            return f"[{match.group(0)}][{target}]" if target else match.group(0)

        parts = []
        last = 0
        for fence in FENCE.finditer(text):
            parts.append(CODE.sub(code, ROLE.sub(role, text[last : fence.start()])))
            parts.append(fence.group(0))
            last = fence.end()
        parts.append(CODE.sub(code, ROLE.sub(role, text[last:])))
        return LITERAL_BLOCK.sub(":", "".join(parts))
