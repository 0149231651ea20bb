"""P1, P2: unary calls next to their baselines (a bare echo; raw INSERT+COMMIT)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import psycopg
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc
from psycopg.types.json import Jsonb

from tests.benchmarks import harness
from tests.benchmarks.harness import IDENTITY


async def echo_rate(address: str) -> float:
    """Bare echo calls/s at IN_FLIGHT on one connection."""
    async with harness.channels(address, 1) as (channel,):
        echo = channel.unary_unary("/bench.Bare/Echo")
        return await harness.rate(lambda _: echo(b"x" * 200))


async def get_and_create(address: str) -> dict[str, float]:
    """GetJob and CreateJob calls/s at IN_FLIGHT, spread over several connections."""
    async with harness.channels(address) as opened:
        stubs = [jobs_pb2_grpc.JobServiceStub(channel) for channel in opened]
        created = await stubs[0].CreateJob(
            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="probe", kind="bench")), metadata=IDENTITY
        )
        get = jobs_pb2.GetJobRequest(id=created.job.id)
        figures = {
            "GetJob": await harness.rate(lambda n: stubs[n % len(stubs)].GetJob(get, metadata=IDENTITY))
        }

        async def create(n: int) -> None:
            job = jobs_pb2.Job(name=f"b{n}", kind="bench", payload={"n": n})
            await stubs[n % len(stubs)].CreateJob(jobs_pb2.CreateJobRequest(job=job), metadata=IDENTITY)

        figures["CreateJob"] = await harness.rate(create)
    return figures


async def start_complete_cycles(address: str, jobs: int, workers: int = 8) -> float:
    """StartJob + CompleteJob per job by ``workers`` concurrent workers; cycles/s."""
    async with harness.channels(address) as opened:
        stubs = [jobs_pb2_grpc.JobServiceStub(channel) for channel in opened]
        ids = []
        for n in range(jobs):
            response = await stubs[n % len(stubs)].CreateJob(
                jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=f"c{n}", kind="cycle")), metadata=IDENTITY
            )
            ids.append(response.job.id)
        queue = iter(ids)

        async def worker(w: int) -> None:
            stub = stubs[w % len(stubs)]
            for job_id in queue:
                await stub.StartJob(jobs_pb2.StartJobRequest(id=job_id), metadata=IDENTITY)
                await stub.CompleteJob(jobs_pb2.CompleteJobRequest(id=job_id), metadata=IDENTITY)

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(workers)))
        return jobs / (time.perf_counter() - started)


async def claim_complete_cycles(address: str, jobs: int, workers: int = 8) -> float:
    """ClaimJobs (one job at a time) + CompleteJob with its run id, by ``workers`` concurrent
    workers over a queue of ``jobs`` pending jobs; jobs/s."""
    async with harness.channels(address) as opened:
        stubs = [jobs_pb2_grpc.JobServiceStub(channel) for channel in opened]
        for n in range(jobs):
            await stubs[n % len(stubs)].CreateJob(
                jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=f"q{n}", kind="claimed")), metadata=IDENTITY
            )
        done = 0

        async def worker(w: int) -> None:
            nonlocal done
            stub = stubs[w % len(stubs)]
            request = jobs_pb2.ClaimJobsRequest(kinds=["claimed"], max_jobs=1, worker_id=f"bench-{w}")
            while True:
                claimed = (await stub.ClaimJobs(request, metadata=IDENTITY)).jobs
                if not claimed:
                    return
                for claim in claimed:
                    finish = jobs_pb2.CompleteJobRequest(id=claim.job.id, run_id=claim.run.id)
                    await stub.CompleteJob(finish, metadata=IDENTITY)
                    done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(workers)))
        elapsed = time.perf_counter() - started
        if done != jobs:
            raise RuntimeError(f"{done} of {jobs} jobs completed")
        return jobs / elapsed


def raw_postgres_inserts(url: str, connections: int = 8) -> float:
    """INSERT + COMMIT per row on ``connections`` psycopg connections, rows/s."""
    conninfo = harness.libpq(url)
    with psycopg.connect(conninfo, autocommit=True) as setup:
        setup.execute("DROP TABLE IF EXISTS bench_raw")
        setup.execute("CREATE TABLE bench_raw (id uuid PRIMARY KEY, payload jsonb)")
    stop = time.monotonic() + harness.SECONDS
    counts = [0] * connections

    def insert(slot: int) -> None:
        with psycopg.connect(conninfo) as connection:
            while time.monotonic() < stop:
                connection.execute("INSERT INTO bench_raw VALUES (%s, %s)", (uuid.uuid4(), Jsonb({"n": 1})))
                connection.commit()
                counts[slot] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=insert, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def raw_sqlite_inserts(folder: Path) -> float:
    """INSERT + COMMIT per row on one sqlite3 connection (WAL, synchronous=NORMAL), rows/s."""
    connection = sqlite3.connect(folder / "raw.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE bench_raw (id TEXT PRIMARY KEY, payload TEXT)")
    done = 0
    stop = time.monotonic() + harness.SECONDS
    started = time.monotonic()
    while time.monotonic() < stop:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO bench_raw VALUES (?, ?)", (uuid.uuid4().hex, '{"n": 1}'))
        connection.execute("COMMIT")
        done += 1
    connection.close()
    return done / (time.monotonic() - started)
