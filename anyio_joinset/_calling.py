from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from numbers import Real
from types import BuiltinFunctionType, CoroutineType
from typing import Any, TypeVar

T = TypeVar("T")

CO_COROUTINE = inspect.CO_COROUTINE


def call_async(
    func: Callable[..., Coroutine[Any, Any, T]],
    args: tuple[Any, ...],
    where: str,
    thread_call: str,
) -> Coroutine[Any, Any, T]:
    """
    Call ``func(*args)`` and return the coroutine, or raise ``TypeError`` (API.md S3).

    Calling an async function only creates the coroutine; its body runs later, in
    the task. ``where`` names the call for error messages ("JoinSet.spawn()");
    ``thread_call`` is the call to suggest for a sync function, with ``{f}`` for
    its name ("spawn_thread({f}, *args)"). Callers handle a plain ``async def``
    (a function with ``CO_COROUTINE``) on their own fast path: it always returns a
    native coroutine.
    """
    reject_uncallable(func, where, thread_call)
    coro = func(*args)
    if not is_coroutine(coro):
        _reject_result(func, coro, where, thread_call)
    return coro


def is_coroutine(obj: object) -> bool:
    # The annotations say what callers promise; this checks what they passed.
    return type(obj) is CoroutineType or isinstance(obj, Coroutine)


def task_name(func: object, coro: object) -> str:
    """Name a task after its function: the coroutine knows it even behind partials."""
    name = getattr(coro, "__qualname__", None)
    return name if isinstance(name, str) else describe(func)


def close_coroutines(*objs: object) -> None:
    """Close any coroutine object among ``objs``: a refused call leaks no warning (S3)."""
    for obj in objs:
        if inspect.iscoroutine(obj):
            obj.close()


def check_flag(value: object, argument: str, where: str) -> None:
    """A keyword flag (``fail_fast=``, ``cancellable=``...): True or False (S3)."""
    if type(value) is not bool:
        msg = f"{where} {argument} must be True or False, got {value!r}."
        raise TypeError(msg)


def real_number(value: object) -> float | None:
    """``value`` as a float if it is a real number (any ``numbers.Real``, not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    return float(value)


def check_name(name: object, where: str) -> str | None:
    """A task name: a str or None (S3)."""
    if name is not None and not isinstance(name, str):
        msg = f"{where} name must be a str or None, got {type(name).__name__}."
        raise TypeError(msg)
    return name


def check_map_func(func: object, where: str) -> None:
    """What ``map()`` can call with each item: refused at the call if it cannot (S3)."""
    close_coroutines(func)
    target = unwrap_partials(func)
    if not callable(func) or isinstance(target, (BuiltinFunctionType, type)):
        msg = (
            f"{where} expects a callable that returns a coroutine for each item, "
            f"got {describe(func)} ({type(func).__name__})."
        )
        raise TypeError(msg)


def check_predicate(predicate: object, where: str) -> None:
    """A predicate called synchronously: not an async function, whose coroutine is truthy (S3)."""
    if not callable(predicate):
        close_coroutines(predicate)  # passed by mistake: no "never awaited" warning
        msg = f"{where} expects a callable predicate, got {describe(predicate)}."
        raise TypeError(msg)
    if is_async_callable(predicate):
        msg = (
            f"{where} expects a synchronous predicate, but {describe(predicate)} is async; "
            f"pass a plain function that returns True or False."
        )
        raise TypeError(msg)


def describe(func: object) -> str:
    """
    How names and messages show ``func``: its qualified name, never a memory address.

    A ``functools.partial`` is shown as the function it wraps (as `spawn` names the
    task, after its coroutine), an object with a ``__call__`` method as
    ``Class.__call__``; anything else (a value passed by mistake) by its repr.
    """
    target = unwrap_partials(func)
    name = getattr(target, "__qualname__", None)
    if isinstance(name, str):
        return name
    if callable(target):
        return f"{type(target).__qualname__}.__call__"
    return repr(target)


def keyed(where: str) -> bool:
    """Whether ``where`` ("JoinMap.spawn()") names a JoinMap's method: hints then take a key."""
    return where.startswith("JoinMap")


def spawn_hint(where: str, name: str) -> str:
    """The `spawn` call to suggest for an async function, a key first on a JoinMap."""
    return f"spawn(key, {name}, *args)" if keyed(where) else f"spawn({name}, *args)"


def is_async_callable(func: object) -> bool:
    """
    Whether calling ``func`` surely makes a coroutine or an async generator.

    An async function or method, a ``partial`` of one, or an object whose
    ``__call__`` is one. A plain function may still return a coroutine: only
    calling it tells (S3).
    """
    target = unwrap_partials(func)
    call = getattr(type(target), "__call__", None)  # noqa: B004 - the class's own method
    return any(
        inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f) for f in (target, call)
    )


def reject_uncallable(func: object, where: str, thread_call: str) -> None:
    """
    Refuse, without calling it, what cannot be an async function (S3).

    A coroutine object (closed), anything not callable, a builtin function or a
    class. The hint for a coroutine object repeats the method of ``where``
    ("JoinSet.start()": ``start(f, *args)``), with a key on a JoinMap.
    """
    if inspect.iscoroutine(func):
        # Close it, so the mistake is reported once, here, and not again as
        # "coroutine ... was never awaited".
        func.close()
        name = describe(func)
        method = where.rpartition(".")[2].removesuffix("()")
        call = f"{method}(key, " if keyed(where) else f"{method}("
        msg = (
            f"{where} got a coroutine object ({name}); pass the async function and its "
            f"arguments instead: {call}{name}, *args), not {call}{name}(*args))."
        )
        raise TypeError(msg)
    if not callable(func):
        msg = (
            f"{where} expects an async function, but got {describe(func)} "
            f"({type(func).__name__}), which is not callable."
        )
        raise TypeError(msg)
    target = unwrap_partials(func)
    if isinstance(target, (BuiltinFunctionType, type)):
        # Neither can return a coroutine: refused without being called (S3). Any
        # other callable (a plain def, a lambda, a method) is called once to find
        # out, as AnyIO and Trio do: it may return a coroutine.
        name = describe(target)
        kind = "a class" if isinstance(target, type) else "a builtin function"
        msg = (
            f"{where} expects an async function, but {name} is {kind}, which cannot "
            f"return a coroutine; to run it in a worker thread, use "
            f"{thread_call.format(f=name)}."
        )
        raise TypeError(msg)


def _reject_result(func: object, result: object, where: str, thread_call: str) -> None:
    name = describe(func)
    if inspect.isasyncgen(result):
        msg = (
            f"{where} expects an async function, but {name} is an async generator "
            f"function; iterate it inside an async function and spawn that."
        )
    else:
        msg = (
            f"{where} expects a callable that returns a coroutine, but {name}() returned "
            f"{type(result).__name__}; for a synchronous function, use "
            f"{thread_call.format(f=name)}."
        )
    raise TypeError(msg)


def sync_task_name(func: object, name: object, where: str) -> str:
    """
    For the sync-function spawns: reject what belongs in `spawn`, and name the task.

    ``where`` names the call for the error ("JoinSet.spawn_thread()"). Refused: a
    coroutine object (closed, so no "never awaited" warning follows), an async
    function, async generator function, ``partial`` of one or object with an async
    ``__call__`` (never called), and anything not callable (S3, S17). The name is
    ``name`` if given, else `describe`'s: the function's qualified name, a
    partial's function's.
    """
    if inspect.iscoroutine(func):
        func.close()
        shown = describe(func)
        msg = (
            f"{where} expects a synchronous function, but got a coroutine object "
            f"({shown}); pass the async function to {spawn_hint(where, shown)} instead."
        )
        raise TypeError(msg)
    if not callable(func):
        msg = (
            f"{where} expects a synchronous function, but got {describe(func)} "
            f"({type(func).__name__}), which is not callable."
        )
        raise TypeError(msg)
    if is_async_callable(func):
        shown = describe(func)
        msg = (
            f"{where} expects a synchronous function, but {shown} is async; "
            f"use {spawn_hint(where, shown)} for it."
        )
        raise TypeError(msg)
    label = check_name(name, where)
    return describe(func) if label is None else label


def returned_coroutine(result: object, func: object, where: str) -> TypeError | None:
    """
    The error for a sync function that returned a coroutine (a lambda around an async call).

    Only its result tells; the coroutine is closed, so no "never awaited" warning
    follows, and the task fails with this error (S3, S17).
    """
    if not inspect.iscoroutine(result):
        return None
    result.close()
    shown = describe(func)
    msg = (
        f"{where} expects a synchronous function, but {shown}() returned a coroutine; "
        f"use {spawn_hint(where, shown)} for it."
    )
    return TypeError(msg)


def unwrap_partials(func: object) -> object:
    while isinstance(func, functools.partial):
        func = func.func
    return func
