"""What every benchmark row needs: servers in processes of their own, and a timed load."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = [("x-actor-id", "bench"), ("x-actor-tenant", "acme"), ("x-actor-roles", "admin")]
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
# The servers' logs (warnings and errors only), kept out of the table.
LOG = open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "a")  # noqa: SIM115
IN_FLIGHT = 64
CHANNELS = 4  # several connections, so SO_REUSEPORT spreads them over the server's processes


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    backend: str
    metric: str
    figure: float
    baseline: float
    unit: str
    goal: str
    met: bool | None
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.figure / self.baseline if self.baseline else 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(address: str, timeout: float = 60) -> None:
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=timeout)


@contextlib.contextmanager
def jobtask_server(database_url: str, *, processes: int = 0) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``jobtask serve`` on a free port with header identity; yields its address and process.

    One actor drives every benchmark, so its cap on open streams is lifted."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "JOBTASK_DATABASE_URL": database_url,
        "JOBTASK_LOG_LEVEL": "WARNING",
        "JOBTASK_STREAMS_PER_ACTOR": "0",
    }
    command = [sys.executable, "-m", "server", "serve", "--auth-mode", "headers", "--listen", address]
    command += ["--processes", str(processes)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=LOG)
    try:
        wait_ready(address)
        time.sleep(0.5)  # every process of the server has bound the port
        yield address, process
    finally:
        process.terminate()
        process.wait(timeout=60)


@contextlib.contextmanager
def bare_server() -> Iterator[str]:
    """The bare grpc.aio baseline (echo and stream) on a free port."""
    port = free_port()
    script = Path(__file__).with_name("bare_stream_server.py")
    process = subprocess.Popen([sys.executable, str(script), str(port)], stdout=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        wait_ready(address)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=20)


async def rate(call: Callable[[int], Awaitable[Any]], *, in_flight: int = IN_FLIGHT) -> float:
    """Calls per second with ``in_flight`` calls outstanding for SECONDS."""
    done = 0
    stop = time.perf_counter() + SECONDS

    async def worker(offset: int) -> None:
        nonlocal done
        n = offset
        while time.perf_counter() < stop:
            await call(n)
            done += 1
            n += in_flight

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(in_flight)))
    return done / (time.perf_counter() - started)


@contextlib.asynccontextmanager
async def channels(address: str, count: int = CHANNELS) -> AsyncIterator[list[grpc.aio.Channel]]:
    """``count`` channels, each its own connection, closed on exit."""
    opened = [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(count)
    ]
    try:
        yield opened
    finally:
        for channel in opened:
            await channel.close()


def fresh_postgres(url: str, name: str) -> str:
    """Create (or recreate) database ``name`` beside ``url``'s; return its URL."""
    admin = make_url(url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return admin.set(database=name).render_as_string(hide_password=False)


def libpq(url: str) -> str:
    """The libpq conninfo of a SQLAlchemy PostgreSQL URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def postgres_reachable(url: str) -> bool:
    try:
        with psycopg.connect(libpq(url), connect_timeout=3):
            return True
    except psycopg.Error:
        return False
