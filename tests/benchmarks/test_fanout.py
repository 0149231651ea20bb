"""Fan-out of events to 100 subscribers, next to a bare server stream measured in the same run.

Run with `make bench`. Both servers run in processes of their own; the client (one
asyncio loop) publishes EVENTS events one after another and 100 subscribers receive
them. Latency is from the event's creation (taken just before its transaction commits)
to its arrival at a subscriber; throughput is deliveries per second across subscribers.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import struct
import time
from pathlib import Path

import grpc
from jobtask.v1 import events_pb2, events_pb2_grpc, jobs_pb2, jobs_pb2_grpc

from tests.benchmarks.conftest import IDENTITY

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", "100"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "300"))


def summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "deliveries_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
    }


async def run_jobtask(address: str) -> dict[str, float]:
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        events = events_pb2_grpc.EventServiceStub(channel)
        jobs = jobs_pb2_grpc.JobServiceStub(channel)

        async def subscriber(ready: asyncio.Event) -> None:
            call = events.Subscribe(events_pb2.SubscribeRequest(types=["job.created"]), metadata=IDENTITY)
            await call.wait_for_connection()
            ready.set()
            received = 0
            async for response in call:
                if response.HasField("event"):
                    sent = response.event.occur_time.ToNanoseconds() / 1e9
                    latencies.append(time.time() - sent)
                    received += 1
                    if received == EVENTS:
                        call.cancel()
                        return

        readies = [asyncio.Event() for _ in range(SUBSCRIBERS)]
        readers = [asyncio.create_task(subscriber(ready)) for ready in readies]
        await asyncio.gather(*(ready.wait() for ready in readies))
        await asyncio.sleep(0.5)  # every stream has joined the live tail
        started = time.perf_counter()
        for n in range(EVENTS):
            await jobs.CreateJob(
                jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=f"b{n}", kind="bench")), metadata=IDENTITY
            )
        await asyncio.wait_for(asyncio.gather(*readers), timeout=120)
        elapsed = time.perf_counter() - started
    return summary(latencies, elapsed)


async def run_bare(address: str) -> dict[str, float]:
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        subscribe = channel.unary_stream("/bench.Bare/Subscribe")
        publish = channel.unary_unary("/bench.Bare/Publish")

        async def subscriber(ready: asyncio.Event) -> None:
            call = subscribe(b"")
            await call.wait_for_connection()
            ready.set()
            received = 0
            async for message in call:
                latencies.append(time.time() - struct.unpack("d", message)[0])
                received += 1
                if received == EVENTS:
                    call.cancel()
                    return

        readies = [asyncio.Event() for _ in range(SUBSCRIBERS)]
        readers = [asyncio.create_task(subscriber(ready)) for ready in readies]
        await asyncio.gather(*(ready.wait() for ready in readies))
        await asyncio.sleep(0.5)
        started = time.perf_counter()
        for _ in range(EVENTS):
            await publish(struct.pack("d", time.time()))
        await asyncio.wait_for(asyncio.gather(*readers), timeout=120)
        elapsed = time.perf_counter() - started
    return summary(latencies, elapsed)


def test_fan_out_to_100_subscribers(servers: tuple[str, str]) -> None:
    jobtask_address, bare_address = servers
    bare = asyncio.run(run_bare(bare_address))
    feed = asyncio.run(run_jobtask(jobtask_address))
    print(f"\nfan-out: {SUBSCRIBERS} subscribers x {EVENTS} events")
    print(f"{'':24}{'bare stream':>14}{'jobtask':>14}{'ratio':>10}")
    for key, label in (
        ("deliveries_per_s", "deliveries/s"),
        ("p50_ms", "p50 latency ms"),
        ("p99_ms", "p99 latency ms"),
    ):
        print(f"{label:24}{bare[key]:>14.1f}{feed[key]:>14.1f}{feed[key] / bare[key]:>10.2f}")
    assert feed["deliveries_per_s"] > 0
