"""P5: the server's resident memory with 1,000 idle Subscribe streams open."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jobtask.v1 import events_pb2, events_pb2_grpc

from tests.benchmarks import harness
from tests.benchmarks.harness import IDENTITY

STREAMS = 1000
PER_CHANNEL = 100


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def with_idle_streams(address: str, pid: int) -> tuple[float, float]:
    """(RSS before, RSS with STREAMS idle streams) of the server process, in MB."""
    before = rss_mb(pid)
    async with harness.channels(address, STREAMS // PER_CHANNEL) as opened:
        calls = []
        for n in range(STREAMS):
            stub = events_pb2_grpc.EventServiceStub(opened[n % len(opened)])
            call = stub.Subscribe(events_pb2.SubscribeRequest(types=["job.*"]), metadata=IDENTITY)
            calls.append(call)
        await asyncio.gather(*(call.wait_for_connection() for call in calls))
        await asyncio.sleep(2)
        during = rss_mb(pid)
        for call in calls:
            call.cancel()
    return before, during
