"""The public surface: __all__, public module paths, final classes, py.typed."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Hashable
from pathlib import Path

import anyio
import pytest

import anyio_joinset


def test_all_is_sorted_and_complete() -> None:
    """__all__ is sorted and lists exactly the public names of the package."""
    public = {
        name
        for name, obj in vars(anyio_joinset).items()
        if not name.startswith("_") and not inspect.ismodule(obj)
    }
    assert anyio_joinset.__all__ == sorted(anyio_joinset.__all__)
    assert set(anyio_joinset.__all__) == public
    assert public == {
        "AnyJoinSet", "Feed", "FinishKind", "Follow", "Instrument", "JoinHandle", "JoinMap",
        "JoinSet", "JoinSetStats", "Outcome", "SetSnapshot", "SetTaskGroup", "StackFrame",
        "TaskCancelled", "TaskSnapshot", "TaskState", "TaskStatus", "WaiterSnapshot",
        "add_instrument", "dump_on_signal", "dump_sets", "remove_instrument", "snapshot_sets",
    }  # fmt: skip


def test_public_objects_show_the_public_module() -> None:
    """Tracebacks and docs show anyio_joinset.X, not the private module."""
    for name in anyio_joinset.__all__:
        assert getattr(anyio_joinset, name).__module__ == "anyio_joinset"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.final sets __final__ from 3.11")
def test_public_classes_are_final() -> None:
    """Public classes are @final, except Instrument, made to be subclassed (as Trio's)."""
    for name in anyio_joinset.__all__:
        obj = getattr(anyio_joinset, name)
        if inspect.isclass(obj) and name != "Instrument":
            assert getattr(obj, "__final__", False), name
    assert not getattr(anyio_joinset.Instrument, "__final__", False)


def test_package_ships_py_typed() -> None:
    """The package ships py.typed (PEP 561)."""
    assert (Path(anyio_joinset.__file__).parent / "py.typed").is_file()


async def test_bare_sets_default_their_type_parameters() -> None:
    """Typing: JoinSet() is a JoinSet[object], JoinMap() a JoinMap[Hashable, object] (PEP 696).

    The defaults are real at run time on every Python (typing_extensions before
    3.13), so a partly subscripted JoinMap[str]() works too.
    """
    (t,) = anyio_joinset.JoinSet.__parameters__
    k, v = anyio_joinset.JoinMap.__parameters__
    assert (t.__default__, k.__default__, v.__default__) == (object, Hashable, object)
    async with anyio_joinset.JoinSet() as js, anyio_joinset.JoinMap[str]() as jm:
        js.spawn(anyio.lowlevel.checkpoint)
        jm.spawn("key", anyio.lowlevel.checkpoint)
        assert await js.join_all() == [None]
        assert await jm.join_all() == [("key", None)]
