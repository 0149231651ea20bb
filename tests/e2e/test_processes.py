"""``serve --processes N``: N server processes on one port, restarted when one dies, all
drained on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc
from sqlalchemy import Engine

from tests.conftest import reset_postgres
from tests.e2e.test_operations import serving

ROOT = Path(__file__).resolve().parents[2]
ADMIN = [("x-actor-id", "root"), ("x-actor-tenant", "acme"), ("x-actor-roles", "admin")]


def children(pid: int) -> set[int]:
    """The server processes ``pid`` started (not multiprocessing's resource tracker)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"spawn_main" in command:
                found.add(int(child))
    return found


def wait_for(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture
def two_processes(postgres_engine: Engine, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    reset_postgres(postgres_engine)
    url = postgres_engine.url.render_as_string(hide_password=False)
    with serving(url, tmp_path / "serve.log", "--processes", "2", "--grace-period", "3") as running:
        yield running


def create(address: str, name: str) -> str:
    with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        request = jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=name, kind="k"))
        return str(stub.CreateJob(request, metadata=ADMIN, timeout=10).job.id)


@pytest.mark.postgres
def test_processes_share_the_port_are_restarted_and_drain(
    two_processes: tuple[subprocess.Popen[bytes], str],
) -> None:
    parent, address = two_processes
    wait_for(lambda: len(children(parent.pid)) == 2)
    first = children(parent.pid)
    # Each new channel is a new connection; the kernel spreads them over both processes.
    assert len({create(address, f"j{n}") for n in range(20)}) == 20

    killed = min(first)
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: len(children(parent.pid)) == 2 and killed not in children(parent.pid))
    assert create(address, "after the restart")

    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 0
    survivors = [pid for pid in first - {killed} if Path(f"/proc/{pid}").exists()]
    assert survivors == []


def test_sqlite_serves_from_one_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--auth-mode", "headers", "--processes", "2"],
        cwd=ROOT,
        env={**os.environ, "JOBTASK_DATABASE_URL": f"sqlite:///{tmp_path / 'one.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SQLite serves from one process" in result.stderr
