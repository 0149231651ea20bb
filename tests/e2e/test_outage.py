"""A database that stops or freezes under a running server: health turns NOT_SERVING, calls
answer UNAVAILABLE (never INTERNAL or a hang), and both recover when the database does.

The database is a private PostgreSQL started for the test (initdb/pg_ctl as the postgres
user, on a port and socket folder of its own); the shared server is never touched.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc

from tests.e2e.test_operations import free_port, serving

ROOT = Path(__file__).resolve().parents[2]
BIN = Path("/usr/lib/postgresql/15/bin")
ADMIN = [("x-actor-id", "root"), ("x-actor-tenant", "acme"), ("x-actor-roles", "admin")]


def _as_postgres(*command: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: list[str], *, check: bool = True) -> None:
    subprocess.run(command, check=check, capture_output=True, cwd="/")


@pytest.fixture
def private_postgres() -> Iterator[tuple[str, Path, str]]:
    """A PostgreSQL of this test's own: (URL, data folder, the command that starts it)."""
    if not (BIN / "initdb").exists() or shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("needs PostgreSQL's initdb/pg_ctl and root to run them as the postgres user")
    folder = Path(tempfile.mkdtemp(prefix="jobtask-private-postgres-"))
    folder.chmod(0o777)
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    sockets.chmod(0o777)
    port = free_port()
    _run(_as_postgres(str(BIN / "initdb"), "-D", str(data), "-A", "trust"))
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = _as_postgres(str(BIN / "pg_ctl"), "-D", str(data))
    start = [*pg_ctl, "-o", options, "-l", str(folder / "log"), "-w", "start"]
    _run(start)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", data, shlex.join(start)
    finally:
        _run([*pg_ctl, "-m", "immediate", "stop"], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _postmaster(data: Path) -> int:
    return int((data / "postmaster.pid").read_text().split()[0])


@pytest.fixture
def served(private_postgres: tuple[str, Path, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    url, _, _ = private_postgres
    log = tmp_path / "server.log"
    with serving(url, log, "--processes", "1", "--grace-period", "2") as (_, address):
        yield address, log


def health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        request = health_pb2.HealthCheckRequest(service="jobtask.v1.JobService")
        return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status)


def create(address: str) -> grpc.StatusCode:
    with grpc.insecure_channel(address) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        try:
            stub.CreateJob(
                jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="n", kind="k")), metadata=ADMIN, timeout=30
            )
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK


def eventually(check: object, expected: object, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if check() == expected:  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"not {expected} within {within}s")


SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.postgres
def test_a_stopped_then_frozen_database(
    private_postgres: tuple[str, Path, str], served: tuple[str, Path]
) -> None:
    _, data, start = private_postgres
    address, log = served
    assert health(address) == SERVING
    assert create(address) is grpc.StatusCode.OK

    _run(_as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"))
    assert eventually(lambda: health(address), NOT_SERVING, within=10) < 10
    assert create(address) is grpc.StatusCode.UNAVAILABLE

    _run(shlex.split(start))
    assert eventually(lambda: health(address), SERVING, within=15) < 15
    eventually(lambda: create(address), grpc.StatusCode.OK, within=15)

    # Frozen, as a partition would leave it: connections open, nothing answers.
    postmaster = _postmaster(data)
    frozen = [postmaster, *_children(postmaster)]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        code = create(address)
        waited = time.monotonic() - began
        assert code is grpc.StatusCode.UNAVAILABLE, code
        assert waited < 25
        assert eventually(lambda: health(address), NOT_SERVING, within=15) < 15
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    assert eventually(lambda: health(address), SERVING, within=30) < 30
    eventually(lambda: create(address), grpc.StatusCode.OK, within=30)

    text = log.read_text()
    assert "Traceback" not in text
    # One line per change of health, not one per failed ping.
    assert text.count("health is NOT_SERVING") == 2
    assert text.count("health is SERVING") == 2


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found
