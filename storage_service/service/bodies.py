"""Streamed request bodies handed to the store as files, byte ranges of downloads, and the error body
every failed answer carries."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream
from datumflow.storage_service.errors import InvalidArgument
from fastapi import Request
from starlette.requests import ClientDisconnect

__all__ = ["error_body", "parse_range"]

_DOWNLOAD_PIECE = 1024 * 1024
T = TypeVar("T")


def error_body(type_name: str, message: str) -> dict[str, Any]:
    """``{"error": {"type": ClassName, "message": ...}}``: the client rebuilds the class from it."""
    return {"error": {"type": type_name, "message": message}}


# -- the streamed request body as a file for the store ------------------------------------


class _BodyReader(io.RawIOBase):
    """A blocking, read-only file over request-body pieces sent from the event loop.

    Runs in a worker thread started by anyio; each refill asks the event loop
    for the next piece. An exception received instead of bytes is raised to
    the store, which then fails the write before touching the commit.
    """

    def __init__(self, pieces: MemoryObjectReceiveStream[bytes | BaseException]) -> None:
        self._pieces = pieces
        self._buf = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._buf and not self._eof:
            try:
                piece = anyio.from_thread.run(self._pieces.receive)
            except anyio.EndOfStream:
                self._eof = True
                break
            if isinstance(piece, BaseException):
                raise piece
            self._buf = memoryview(piece)
        n = min(len(buffer), len(self._buf))
        buffer[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


async def _with_body(request: Request, work: Callable[[io.BufferedReader], T]) -> T:
    """Run ``work(body_file)`` in a thread while the event loop streams the body into it."""
    send, receive = anyio.create_memory_object_stream[bytes | BaseException](max_buffer_size=8)

    async def pump() -> None:
        async with send:
            try:
                async for piece in request.stream():
                    if piece:
                        await send.send(piece)
            except ClientDisconnect:
                await send.send(InvalidArgument("the upload was interrupted before its end"))
            except anyio.BrokenResourceError:  # the store stopped reading (it failed early)
                pass

    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work(io.BufferedReader(_BodyReader(receive), buffer_size=_DOWNLOAD_PIECE)))
        except BaseException as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(_pump_quietly, pump)
        await anyio.to_thread.run_sync(run)
        receive.close()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]  # type: ignore[no-any-return]


async def _pump_quietly(pump: Callable[[], Awaitable[None]]) -> None:
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await pump()


# -- ranges --------------------------------------------------------------------------------

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, length) of a single ``Range: bytes=…`` header; None if unsatisfiable."""
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise InvalidArgument(f"unsupported Range header {header!r}: use one bytes=START-END range")
    first, last = match.groups()
    if first == "":
        length = min(int(last), size)
        return (size - length, length) if length else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end - start + 1
