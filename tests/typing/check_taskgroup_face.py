"""
Typing tests of the task-group face (S24-S27): checked by mypy and pyright, never run.

The face goes wherever an ``anyio.abc.TaskGroup`` is expected.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

import anyio
from anyio.abc import SocketStream, TaskGroup, TaskStatus

from anyio_joinset import JoinMap, JoinSet, SetTaskGroup

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type


async def handle(stream: SocketStream) -> None:
    async with stream:
        await stream.send(b"hello\n")


async def returns_int(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x


async def serve(*, task_status: TaskStatus[int]) -> None:
    task_status.started(8080)


def wants_a_task_group(tg: TaskGroup) -> None:
    tg.start_soon(returns_int, 1)


async def check() -> None:
    async with JoinSet[None]() as js:
        face = js.task_group
        assert_type(face, SetTaskGroup)
        wants_a_task_group(face)
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        await listener.serve(handle, task_group=js.task_group)
        assert_type(face.start_soon(returns_int, 1), anyio.TaskHandle[int])
        assert_type(face.create_task(returns_int(1)), anyio.TaskHandle[int])
        port: Any = await face.start(serve)
        assert_type(port, Any)
        handle_ = await face.start(serve, return_handle=True)
        assert_type(handle_, anyio.TaskHandle[None, Any])
        assert_type(face.cancel(), None)
        face.start_soon(returns_int, "1")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]

    async with JoinMap[int, None]() as jm:
        wants_a_task_group(jm.task_group(itertools.count().__next__))
        jm.task_group(lambda: "not an int")  # type: ignore[arg-type,return-value]  # pyright: ignore[reportArgumentType]
