"""P6, P7: procrastinate, a PostgreSQL job queue, on the same database in the same run.

P6 defers no-op jobs with 8 concurrent callers (``defer_async``); P7 runs its worker at
concurrency 8 over a queue of deferred no-op jobs until the queue is empty.
"""

from __future__ import annotations

import asyncio
import time

import procrastinate
import psycopg

from tests.benchmarks import harness


def _app(url: str) -> procrastinate.App:
    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=harness.libpq(url)))


async def _prepared(url: str) -> procrastinate.App:
    app = _app(url)
    await app.open_async()
    with psycopg.connect(harness.libpq(url)) as connection:
        installed = connection.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
    if installed is None or installed[0] is None:
        await app.schema_manager.apply_schema_async()
    return app


def defer_rate(url: str, callers: int = 8) -> float:
    """Jobs deferred per second by ``callers`` concurrent callers."""

    async def run() -> float:
        app = await _prepared(url)

        @app.task(name="noop", queue="bench")
        async def noop() -> None:
            return None

        done = 0
        stop = time.perf_counter() + harness.SECONDS

        async def caller() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await noop.defer_async()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        elapsed = time.perf_counter() - started
        await app.close_async()
        return done / elapsed

    return asyncio.run(run())


def worker_rate(url: str, jobs: int, concurrency: int = 8) -> float:
    """Jobs per second the worker completes, from a queue of ``jobs`` deferred no-op jobs."""

    async def run() -> float:
        app = await _prepared(url)

        @app.task(name="cycle", queue="cycles")
        async def cycle() -> None:
            return None

        await cycle.batch_defer_async(*({} for _ in range(jobs)))
        started = time.perf_counter()
        await app.run_worker_async(queues=["cycles"], concurrency=concurrency, wait=False)
        elapsed = time.perf_counter() - started
        await app.close_async()
        return jobs / elapsed

    return asyncio.run(run())
