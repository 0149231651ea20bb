"""P3: events fanned out to 100 subscribers, next to a bare server stream.

The publisher sends EVENTS events either as fast as it can (deliveries/s across all
subscribers) or paced at PACE events/s (latency from the event's creation, taken just
before its transaction commits, to its arrival at a subscriber).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import struct
import time
from collections.abc import Awaitable, Callable

from jobtask.v1 import events_pb2, events_pb2_grpc, jobs_pb2, jobs_pb2_grpc

from tests.benchmarks import harness
from tests.benchmarks.harness import IDENTITY

SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", "100"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "300"))
PACE = 100.0  # events/s for the latency figure


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "deliveries_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
    }


async def _fan_out(
    subscribe: Callable[[], object],
    sent_at: Callable[[object], float | None],
    publish: Callable[[int], Awaitable[object]],
    paced: bool,
) -> dict[str, float]:
    latencies: list[float] = []

    async def subscriber(ready: asyncio.Event) -> None:
        call = subscribe()
        await call.wait_for_connection()  # type: ignore[attr-defined]
        ready.set()
        received = 0
        async for message in call:  # type: ignore[attr-defined]
            sent = sent_at(message)
            if sent is None:
                continue
            latencies.append(time.time() - sent)
            received += 1
            if received == EVENTS:
                call.cancel()  # type: ignore[attr-defined]
                return

    readies = [asyncio.Event() for _ in range(SUBSCRIBERS)]
    readers = [asyncio.create_task(subscriber(ready)) for ready in readies]
    await asyncio.gather(*(ready.wait() for ready in readies))
    await asyncio.sleep(0.5)  # every stream has joined the live tail
    started = time.perf_counter()
    for n in range(EVENTS):
        await publish(n)
        if paced:
            await asyncio.sleep(max(0.0, started + (n + 1) / PACE - time.perf_counter()))
    await asyncio.wait_for(asyncio.gather(*readers), timeout=180)
    return summary(latencies, time.perf_counter() - started)


async def jobtask(address: str, *, paced: bool) -> dict[str, float]:
    async with harness.channels(address, 1) as (channel,):
        events = events_pb2_grpc.EventServiceStub(channel)
        jobs = jobs_pb2_grpc.JobServiceStub(channel)

        def sent_at(response: object) -> float | None:
            if not response.HasField("event"):  # type: ignore[attr-defined]
                return None
            return float(response.event.occur_time.ToNanoseconds()) / 1e9  # type: ignore[attr-defined]

        return await _fan_out(
            lambda: events.Subscribe(events_pb2.SubscribeRequest(types=["job.created"]), metadata=IDENTITY),
            sent_at,
            lambda n: jobs.CreateJob(
                jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=f"f{n}", kind="bench")), metadata=IDENTITY
            ),
            paced,
        )


async def bare(address: str, *, paced: bool) -> dict[str, float]:
    async with harness.channels(address, 1) as (channel,):
        subscribe = channel.unary_stream("/bench.Bare/Subscribe")
        publish = channel.unary_unary("/bench.Bare/Publish")
        return await _fan_out(
            lambda: subscribe(b""),
            lambda message: struct.unpack("d", message)[0],  # type: ignore[arg-type]
            lambda _: publish(struct.pack("d", time.time())),
            paced,
        )
