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

The bases shown under a public class are public too: a private base (the engine
behind `JoinSet` and `JoinMap`) gives way to its own bases, subscripted as the
class subscripts it (`Engine[T]` shows as `Generic[T]`), and a base outside this
package must have its page in ``EXTERNAL``, or the build fails. ``on_env``, the
same file loaded as an mkdocs hook, registers those pages with autorefs, so the
names link to the other project's documentation (no inventory is downloaded:
the build reaches no other host).
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
# The other projects' objects the reference shows (as bases), and their pages.
EXTERNAL = {
    "anyio": "https://anyio.readthedocs.io/en/stable/",
    "anyio.TaskCancelled": "https://anyio.readthedocs.io/en/stable/api.html#anyio.TaskCancelled",
    "anyio.abc.TaskGroup": "https://anyio.readthedocs.io/en/stable/api.html#anyio.abc.TaskGroup",
    "enum.Enum": "https://docs.python.org/3/library/enum.html#enum.Enum",
    "typing.Generic": "https://docs.python.org/3/library/typing.html#typing.Generic",
}


def on_env(env: Any, /, *, config: Any, **kwargs: Any) -> Any:  # noqa: ARG001
    """As an mkdocs hook: link the names of EXTERNAL to their pages (before autorefs runs)."""
    for identifier, url in EXTERNAL.items():
        config.plugins["autorefs"].register_url(identifier, url)
    return env


class CrossRefs(griffe.Extension):
    """Rewrite every docstring of ``anyio_joinset`` once the package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:  # noqa: ARG002
        if pkg.name == "anyio_joinset":
            self.pkg = pkg
            self.public = frozenset(str(name) for name in pkg.exports or ())
            self._walk(pkg)
            for name in sorted(self.public):
                obj = pkg[name]
                target = obj.final_target if isinstance(obj, griffe.Alias) else obj
                if isinstance(target, griffe.Class):
                    target.bases = self._public_bases(target)

    def _public_bases(self, cls: griffe.Class) -> list[griffe.Expr | str]:
        """``cls``'s bases with each private one replaced by its own, recursively."""
        shown: list[griffe.Expr | str] = []
        for base in cls.bases:
            path = base.canonical_path if isinstance(base, griffe.Expr) else base
            if path.startswith("anyio_joinset._"):
                private = self.pkg[path.removeprefix("anyio_joinset.")]
                assert isinstance(private, griffe.Class), path  # noqa: S101
                args = base.slice if isinstance(base, griffe.ExprSubscript) else None
                for inherited in self._public_bases(private):
                    if args is not None and isinstance(inherited, griffe.ExprSubscript):
                        # Engine[T] over Generic[T]: the class's own arguments.
                        inherited = griffe.ExprSubscript(inherited.left, args)  # noqa: PLW2901
                    shown.append(inherited)
            elif path.removeprefix("anyio_joinset.") not in self.public and path not in EXTERNAL:
                msg = (
                    f"anyio_joinset.{cls.name} has the base {path}: add its page to EXTERNAL "
                    "in docs/_griffe_crossrefs.py."
                )
                raise ValueError(msg)
            else:
                shown.append(base)
        # Once each: JoinMap(Engine[T], Generic[K, T]) shows Generic[K, T] alone.
        unique: dict[str, griffe.Expr | str] = {}
        for base in reversed(shown):
            path = base.canonical_path if isinstance(base, griffe.Expr) else base
            unique.setdefault(path, base)
        return list(reversed(unique.values()))

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
