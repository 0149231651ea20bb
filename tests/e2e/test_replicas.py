"""Two server processes on one PostgreSQL: a write on either reaches subscribers on both,
and a replica frozen in the middle of its writes does not stop the other's."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc
from sqlalchemy import Engine, create_engine, text

from tests.conftest import reset_postgres
from tests.e2e.test_events import Collector
from tests.e2e.test_operations import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN = [("x-actor-id", "root"), ("x-actor-tenant", "acme"), ("x-actor-roles", "admin")]
WRITERS, JOBS_PER_WRITER = 8, 42  # 8 x 42 x (create, start, complete) = 1,008 state changes
EVENTS_PER_JOB = 5  # created; started + status_changed; succeeded + status_changed


@pytest.fixture
def replicas(postgres_engine: Engine, tmp_path: Path) -> Iterator[list[str]]:
    yield from _replicas(postgres_engine, tmp_path, [])


@pytest.fixture
def replica_processes(postgres_engine: Engine, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    for _ in _replicas(postgres_engine, tmp_path, processes):
        yield processes


def _replicas(
    postgres_engine: Engine, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> Iterator[list[str]]:
    reset_postgres(postgres_engine)
    url = postgres_engine.url.render_as_string(hide_password=False)
    addresses, logs = [], []
    for n in range(2):
        address = f"127.0.0.1:{free_port()}"
        env = {**os.environ, "JOBTASK_DATABASE_URL": url, "JOBTASK_LOG_FORMAT": "text"}
        log = (tmp_path / f"replica-{n}.log").open("w")
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "server", "serve", "--auth-mode", "headers"),
                    *("--listen", address, "--processes", "1"),
                ],
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
    for process, address in zip(processes, addresses, strict=True):
        process.address = address  # type: ignore[attr-defined]
    yield addresses
    for process in processes:
        process.send_signal(signal.SIGCONT)
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


PAUSE_S = 10.0
STALL_LIMIT_S = 2.0


@pytest.mark.postgres
def test_a_replica_paused_mid_write_does_not_stall_the_other(
    replica_processes: list[subprocess.Popen[bytes]], postgres_engine: Engine
) -> None:
    """Replica A is frozen (SIGSTOP, as a long GC pause or a partition would) for 10 s while
    both replicas take writes. Replica B's writes keep committing: no gap between two of its
    commits exceeds 2 s. Afterwards every committed event is in the log once, in order."""
    paused, alive = replica_processes
    channels = {p.pid: grpc.insecure_channel(p.address) for p in replica_processes}  # type: ignore[attr-defined]
    stop = threading.Event()
    commits_on_b: list[float] = []
    failures: dict[str, int] = {"a": 0, "b": 0}

    def write(process: subprocess.Popen[bytes], side: str, name: str) -> None:
        stub = jobs_pb2_grpc.JobServiceStub(channels[process.pid])
        _write_until(stop, stub, name, commits_on_b if side == "b" else [], failures, side)

    writers = [threading.Thread(target=write, args=(paused, "a", f"a{w}")) for w in range(4)]
    writers += [threading.Thread(target=write, args=(alive, "b", f"b{w}")) for w in range(2)]
    try:
        for writer in writers:
            writer.start()
        time.sleep(2)
        paused.send_signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        time.sleep(PAUSE_S)
        thawed_at = time.monotonic()
        paused.send_signal(signal.SIGCONT)
        time.sleep(3)
        stop.set()
        for writer in writers:
            writer.join(timeout=60)

        during = [at for at in commits_on_b if frozen_at <= at <= thawed_at]
        edges = [frozen_at, *during, thawed_at]
        longest_stall = max(later - earlier for earlier, later in itertools.pairwise(edges))
        assert len(during) > 10, f"replica B committed only {len(during)} writes during the pause"
        assert longest_stall <= STALL_LIMIT_S, f"replica B stalled {longest_stall:.2f}s"
        assert failures["b"] == 0

        with postgres_engine.connect() as connection:
            count, last = connection.execute(text("SELECT count(*), max(sequence) FROM events")).one()
        assert count == last
        subscriber = Collector(channels[alive.pid], ADMIN, after_sequence=0)
        try:
            events = subscriber.wait_for(count, timeout=60)
        finally:
            subscriber.cancel()
        assert [e.sequence for e in events[:count]] == list(range(1, count + 1))
    finally:
        paused.send_signal(signal.SIGCONT)
        for channel in channels.values():
            channel.close()


def _write_until(
    stop: threading.Event,
    stub: jobs_pb2_grpc.JobServiceStub,
    name: str,
    commits: list[float],
    failures: dict[str, int],
    side: str,
) -> None:
    """Create and start jobs until ``stop``; note when each pair committed, count failures."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            job = stub.CreateJob(
                jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=f"{name}-{n}", kind="k")),
                metadata=ADMIN,
                timeout=30,
            ).job
            stub.StartJob(jobs_pb2.StartJobRequest(id=job.id), metadata=ADMIN, timeout=30)
            commits.append(time.monotonic())
        except grpc.RpcError:
            failures[side] += 1


@pytest.mark.postgres
def test_two_replicas_started_together_on_an_empty_database_both_serve(
    postgres_engine: Engine, tmp_path: Path
) -> None:
    """20 rounds: a new database each time, two server processes started at the same
    instant; both migrate (one waits for the other's lock), then both answer."""
    maker = create_engine(postgres_engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        for round_ in range(20):
            name = f"jobtask_start_{os.getpid()}_{round_}"
            with maker.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = postgres_engine.url.set(database=name).render_as_string(hide_password=False)
            env = {**os.environ, "JOBTASK_DATABASE_URL": url, "JOBTASK_LOG_FORMAT": "text"}
            addresses = [f"127.0.0.1:{free_port()}" for _ in range(2)]
            log = tmp_path / f"round-{round_}.log"
            with log.open("w") as output:
                started = [
                    subprocess.Popen(
                        [
                            *(sys.executable, "-m", "server", "serve", "--auth-mode", "headers"),
                            *("--listen", address, "--processes", "1"),
                        ],
                        cwd=ROOT,
                        env=env,
                        stdout=output,
                        stderr=output,
                    )
                    for address in addresses
                ]
            try:
                for address in addresses:
                    with grpc.insecure_channel(address) as channel:
                        grpc.channel_ready_future(channel).result(timeout=60)
                        job = jobs_pb2_grpc.JobServiceStub(channel).CreateJob(  # type: ignore[no-untyped-call]
                            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=f"r{round_}", kind="k")),
                            metadata=ADMIN,
                            timeout=10,
                        )
                        assert job.job.id
                assert all(process.poll() is None for process in started), log.read_text()
            finally:
                for process in started:
                    process.terminate()
                codes = [process.wait(timeout=30) for process in started]
                with maker.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            assert codes == [0, 0], log.read_text()
    finally:
        maker.dispose()
