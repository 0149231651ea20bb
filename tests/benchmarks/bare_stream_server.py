"""Bare grpc.aio baselines: a server-stream fan-out and a unary echo, no auth, no database.

Publish(bytes) hands the payload to every open Subscribe stream; Echo(bytes) answers it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc

subscribers: set[asyncio.Queue[bytes]] = set()


async def subscribe(_request: bytes, context: Any) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    subscribers.add(queue)
    await context.send_initial_metadata(())
    try:
        while True:
            yield await queue.get()
    finally:
        subscribers.discard(queue)


async def publish(request: bytes, _context: Any) -> bytes:
    for queue in subscribers:
        queue.put_nowait(request)
    return b""


async def echo(request: bytes, _context: Any) -> bytes:
    return request


async def main(port: int) -> None:
    server = grpc.aio.server()
    handlers = {
        "Subscribe": grpc.unary_stream_rpc_method_handler(subscribe),
        "Publish": grpc.unary_unary_rpc_method_handler(publish),
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Bare", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
