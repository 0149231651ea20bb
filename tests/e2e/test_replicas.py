"""Two server processes on one PostgreSQL: a write on either reaches subscribers on both."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc
from sqlalchemy import Engine

from tests.conftest import reset_postgres
from tests.e2e.test_events import Collector
from tests.e2e.test_operations import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN = [("x-actor-id", "root"), ("x-actor-tenant", "acme"), ("x-actor-roles", "admin")]
WRITERS, JOBS_PER_WRITER = 8, 42  # 8 x 42 x (create, start, complete) = 1,008 state changes
EVENTS_PER_JOB = 5  # created; started + status_changed; succeeded + status_changed


@pytest.fixture
def replicas(postgres_engine: Engine, tmp_path: Path) -> Iterator[list[str]]:
    reset_postgres(postgres_engine)
    url = postgres_engine.url.render_as_string(hide_password=False)
    processes, addresses, logs = [], [], []
    for n in range(2):
        address = f"127.0.0.1:{free_port()}"
        env = {**os.environ, "JOBTASK_DATABASE_URL": url, "JOBTASK_LOG_FORMAT": "text"}
        log = (tmp_path / f"replica-{n}.log").open("w")
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "server", "serve", "--auth-mode", "headers", "--listen", address],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )
        )
        addresses.append(address)
    for address in addresses:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
    yield addresses
    for process in processes:
        process.terminate()
    for process in processes:
        assert process.wait(timeout=20) == 0
    for log in logs:
        log.close()


@pytest.mark.postgres
def test_every_subscriber_sees_every_event_once_in_order(replicas: list[str]) -> None:
    channels = [grpc.insecure_channel(address) for address in replicas]
    try:
        subscribers = [Collector(channel, ADMIN, after_sequence=0) for channel in channels]
        errors: list[BaseException] = []

        def write(writer: int) -> None:
            try:
                for n in range(JOBS_PER_WRITER):
                    stub = jobs_pb2_grpc.JobServiceStub(channels[(writer + n) % 2])
                    other = jobs_pb2_grpc.JobServiceStub(channels[(writer + n + 1) % 2])
                    job = stub.CreateJob(
                        jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=f"w{writer}-{n}", kind="k")),
                        metadata=ADMIN,
                    ).job
                    other.StartJob(jobs_pb2.StartJobRequest(id=job.id), metadata=ADMIN)
                    stub.CompleteJob(jobs_pb2.CompleteJobRequest(id=job.id), metadata=ADMIN)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []

        total = WRITERS * JOBS_PER_WRITER * EVENTS_PER_JOB
        for subscriber in subscribers:
            events = subscriber.wait_for(total, timeout=60)
            subscriber.cancel()
            assert [e.sequence for e in events] == list(range(1, total + 1))
            assert len({e.id for e in events}) == total
    finally:
        for channel in channels:
            channel.close()
