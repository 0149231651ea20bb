"""The servers the benchmarks measure: jobtask and a bare grpc.aio baseline, each in a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.e2e.test_operations import free_port

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = [("x-actor-id", "bench"), ("x-actor-tenant", "acme"), ("x-actor-roles", "admin")]


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[str, str]]:
    jobtask_address, bare_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    database = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{tmp_path / 'bench.db'}")
    env = {**os.environ, "JOBTASK_DATABASE_URL": database, "JOBTASK_LOG_LEVEL": "WARNING"}
    processes = [
        start(
            [sys.executable, "-m", "server", "serve", "--auth-mode", "headers", "--listen", jobtask_address],
            env,
        ),
        start(
            [
                sys.executable,
                str(Path(__file__).with_name("bare_stream_server.py")),
                bare_address.split(":")[1],
            ]
        ),
    ]
    try:
        wait_ready(jobtask_address)
        wait_ready(bare_address)
        yield jobtask_address, bare_address
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
