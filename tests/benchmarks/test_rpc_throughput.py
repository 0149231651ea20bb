"""Unary throughput of the hot paths (GetJob, CreateJob, StartJob) next to a bare echo.

Run with `make bench`. Both servers run in processes of their own and share the two
cores with this client: 64 calls in flight for BENCH_SECONDS each; figures are calls/s
and their ratio to the bare echo measured in the same run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc

from tests.benchmarks.conftest import IDENTITY

IN_FLIGHT = 64
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))


async def rate(call: Callable[[int], Awaitable[Any]]) -> float:
    done = 0
    stop = time.perf_counter() + SECONDS

    async def worker(offset: int) -> None:
        nonlocal done
        n = offset
        while time.perf_counter() < stop:
            await call(n)
            done += 1
            n += IN_FLIGHT

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(IN_FLIGHT)))
    return done / (time.perf_counter() - started)


async def measure(jobtask_address: str, bare_address: str) -> dict[str, float]:
    figures = {}
    async with grpc.aio.insecure_channel(bare_address) as bare:
        echo = bare.unary_unary("/bench.Bare/Echo")
        figures["bare echo"] = await rate(lambda _: echo(b"x" * 200))
    async with grpc.aio.insecure_channel(jobtask_address) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        created = await jobs.CreateJob(
            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="probe", kind="bench")), metadata=IDENTITY
        )
        get = jobs_pb2.GetJobRequest(id=created.job.id)
        figures["GetJob"] = await rate(lambda _: jobs.GetJob(get, metadata=IDENTITY))
        ids: list[str] = []

        async def create(n: int) -> None:
            response = await jobs.CreateJob(
                jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=f"b{n}", kind="bench")), metadata=IDENTITY
            )
            ids.append(response.job.id)

        figures["CreateJob"] = await rate(create)
        queue = iter(list(ids))

        async def start(_: int) -> None:
            job_id = next(queue, None)
            if job_id is not None:
                await jobs.StartJob(jobs_pb2.StartJobRequest(id=job_id), metadata=IDENTITY)

        figures["StartJob"] = await rate(start)
    return figures


def test_unary_throughput(servers: tuple[str, str]) -> None:
    jobtask_address, bare_address = servers
    figures = asyncio.run(measure(jobtask_address, bare_address))
    baseline = figures["bare echo"]
    print(f"\nunary calls/s, {IN_FLIGHT} in flight, {SECONDS:g}s each")
    for name, value in figures.items():
        print(f"{name:12}{value:>10.0f}{value / baseline:>8.2f}x")
    assert figures["GetJob"] > 0
