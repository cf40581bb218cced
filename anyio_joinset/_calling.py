from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
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


def describe(func: object) -> str:
    """A function's qualified name, else its repr, for names and messages."""
    name = getattr(func, "__qualname__", None)
    return name if isinstance(name, str) else repr(func)


def reject_uncallable(func: object, where: str, thread_call: str) -> None:
    if inspect.iscoroutine(func):
        # Close it, so the mistake is reported once, here, and not again as
        # "coroutine ... was never awaited".
        func.close()
        name = describe(func)
        msg = (
            f"{where} got a coroutine object ({name}); pass the async function "
            f"and its arguments instead: spawn({name}, *args), not spawn({name}(*args))."
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
    For the sync-function spawns: reject an async function, and name the task.

    ``where`` names the call for the error ("JoinSet.spawn_thread()"); the name is
    ``name`` if given, else the function's qualified name.
    """
    if not callable(func):
        if inspect.iscoroutine(func):
            func.close()
        msg = (
            f"{where} expects a synchronous function, but got {describe(func)} "
            f"({type(func).__name__}), which is not callable."
        )
        raise TypeError(msg)
    target = unwrap_partials(func)
    if inspect.iscoroutinefunction(target):
        msg = (
            f"{where} expects a synchronous function, but {describe(target)} is async; "
            f"use spawn() for it."
        )
        raise TypeError(msg)
    label = check_name(name, where)
    return describe(func) if label is None else label


def unwrap_partials(func: object) -> object:
    while isinstance(func, functools.partial):
        func = func.func
    return func
