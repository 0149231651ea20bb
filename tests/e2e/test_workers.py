"""Workers against a real server, on SQLite and PostgreSQL: claims by many workers, a worker
killed with SIGKILL, cooperative cancel, the long poll's wake-up, SIGTERM draining."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc
from sqlalchemy import Engine

from server.config import Settings
from server.worker import JobContext, Worker
from tests.conftest import SQL_BACKENDS, reset_postgres
from tests.e2e.conftest import ServerThread, auth
from tests.e2e.test_operations import free_port

ROOT = Path(__file__).resolve().parents[2]
OWNER = auth("ann", roles=("member",))
OPERATOR = auth("ops", roles=("operator",))


def worker_auth(name: str) -> list[tuple[str, str]]:
    return auth(name, roles=("worker",))


@pytest.fixture(params=SQL_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'workers.db'}"
    engine: Engine = request.getfixturevalue("postgres_engine")
    reset_postgres(engine)
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def running(serve: Callable[[Settings], ServerThread], settings: Settings, database_url: str) -> ServerThread:
    return serve(replace(settings, database_url=database_url, scheduler_interval_s=0.2))


@pytest.fixture
def channel(running: ServerThread) -> Iterator[grpc.Channel]:
    assert running.running is not None
    with grpc.insecure_channel(f"127.0.0.1:{running.running.port}") as chan:
        yield chan


def stub(channel: grpc.Channel) -> jobs_pb2_grpc.JobServiceStub:
    return jobs_pb2_grpc.JobServiceStub(channel)  # type: ignore[no-untyped-call]


def create(channel: grpc.Channel, kind: str = "report.build", **fields: object) -> jobs_pb2.Job:
    job = jobs_pb2.Job(name="job", kind=kind, **fields)  # type: ignore[arg-type]
    return stub(channel).CreateJob(jobs_pb2.CreateJobRequest(job=job), metadata=OWNER).job


def get(channel: grpc.Channel, job_id: str) -> jobs_pb2.Job:
    return stub(channel).GetJob(jobs_pb2.GetJobRequest(id=job_id), metadata=OPERATOR).job


def seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(seconds=value))
    return duration


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def retrying(max_attempts: int) -> jobs_pb2.RetryPolicy:
    return jobs_pb2.RetryPolicy(max_attempts=max_attempts, initial_backoff=seconds(0.2))


def test_eight_workers_run_a_thousand_jobs_each_exactly_once(channel: grpc.Channel) -> None:
    total = 1_000
    for _ in range(total):
        create(channel)
    ran: Counter[str] = Counter()
    lock = threading.Lock()
    workers = [
        Worker(channel, metadata=worker_auth(f"w{n}"), worker_id=f"w{n}", poll_wait=timedelta(seconds=1))
        for n in range(8)
    ]
    for worker in workers:

        @worker.handler("report.build")
        def build(job: JobContext) -> dict[str, object]:
            with lock:
                ran[job.id] += 1
            return {"ok": True}

    threads = [threading.Thread(target=w.run) for w in workers]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: sum(w.completed for w in workers) >= total, timeout=240)
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(timeout=30)

    assert len(ran) == total and set(ran.values()) == {1}
    assert sum(w.failed for w in workers) == 0
    jobs = stub(channel)
    for status in (jobs_pb2.JOB_STATUS_RUNNING, jobs_pb2.JOB_STATUS_PENDING):
        left = jobs.ListJobs(jobs_pb2.ListJobsRequest(statuses=[status]), metadata=OPERATOR).jobs
        assert list(left) == []


def test_a_long_poll_wakes_when_a_job_becomes_runnable(channel: grpc.Channel, running: ServerThread) -> None:
    assert running.running is not None
    running.running.runnable.poll_s = 60.0  # only a wake-up can answer in time
    jobs = stub(channel)
    latencies = []
    for _ in range(7):
        request = jobs_pb2.ClaimJobsRequest(kinds=["poll.me"], wait=seconds(10))
        pending = jobs.ClaimJobs.future(request, metadata=worker_auth("poller"), timeout=15)
        time.sleep(0.3)  # the claim is waiting
        created_at = time.monotonic()
        job = create(channel, kind="poll.me")
        claimed = pending.result()
        latencies.append(time.monotonic() - created_at)
        assert [c.job.id for c in claimed.jobs] == [job.id]
    median = statistics.median(latencies)
    print(f"long poll wake-up after CreateJob returned: median {median * 1000:.1f} ms")
    # The fallback poll is a minute away: the commit woke the wait. The bound is generous
    # for a loaded machine.
    assert median < 0.5


def test_a_long_poll_answers_empty_when_nothing_comes(channel: grpc.Channel) -> None:
    started = time.monotonic()
    answer = stub(channel).ClaimJobs(
        jobs_pb2.ClaimJobsRequest(kinds=["never"], wait=seconds(0.5)), metadata=worker_auth("w"), timeout=5
    )
    assert list(answer.jobs) == []
    assert 0.45 < time.monotonic() - started < 3


def test_claim_requests_are_checked(channel: grpc.Channel) -> None:
    jobs = stub(channel)
    for request, field in (
        (jobs_pb2.ClaimJobsRequest(wait=seconds(61)), "wait"),
        (jobs_pb2.ClaimJobsRequest(lease_duration=seconds(0.1)), "lease_duration"),
        (jobs_pb2.ClaimJobsRequest(max_jobs=101), "max_jobs"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            jobs.ClaimJobs(request, metadata=worker_auth("w"), timeout=5)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in refused.value.details()
    with pytest.raises(grpc.RpcError) as denied:
        jobs.ClaimJobs(jobs_pb2.ClaimJobsRequest(), metadata=OWNER, timeout=5)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_a_cancelled_job_is_seen_by_the_next_heartbeat_and_ends_cancelled(channel: grpc.Channel) -> None:
    job = create(channel, retry_policy=retrying(5))
    seen = threading.Event()
    worker = Worker(
        channel, metadata=worker_auth("w"), lease=timedelta(seconds=1.5), poll_wait=timedelta(seconds=1)
    )

    @worker.handler("report.build")
    def build(context: JobContext) -> None:
        if context.wait_cancelled(30):
            seen.set()

    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: get(channel, job.id).status == jobs_pb2.JOB_STATUS_RUNNING)
        asked = stub(channel).CancelJob(jobs_pb2.CancelJobRequest(id=job.id, reason="enough"), metadata=OWNER)
        assert asked.job.cancel_requested
        assert seen.wait(5), "the handler never learned of the cancellation"
        wait_for(lambda: get(channel, job.id).status == jobs_pb2.JOB_STATUS_CANCELLED, timeout=5)
    finally:
        worker.stop()
        thread.join(timeout=10)
    runs = stub(channel).ListJobRuns(jobs_pb2.ListJobRunsRequest(job_id=job.id), metadata=OPERATOR).runs
    assert [r.status for r in runs] == [jobs_pb2.JOB_RUN_STATUS_CANCELLED]


def start_worker_process(
    address: str, log: Path, *command: str, lease: float = 1.0
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "JOBTASK_SERVER": address,
        "JOBTASK_TOKEN": worker_auth("proc")[0][1].removeprefix("Bearer "),
    }
    with log.open("a") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.cli.main",
                "worker",
                "--kind",
                "report.build",
                "--lease",
                str(lease),
                "--wait",
                "1",
                "--",
                *command,
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )


def test_a_worker_killed_mid_job_loses_it_to_another_after_its_lease(
    channel: grpc.Channel, running: ServerThread, tmp_path: Path
) -> None:
    assert running.running is not None
    address = f"127.0.0.1:{running.running.port}"
    job = create(channel, retry_policy=retrying(3))
    doomed = start_worker_process(address, tmp_path / "worker.log", "sleep", "60")
    try:
        wait_for(lambda: get(channel, job.id).status == jobs_pb2.JOB_STATUS_RUNNING, timeout=30)
        dead_run = (
            stub(channel).ListJobRuns(jobs_pb2.ListJobRunsRequest(job_id=job.id), metadata=OPERATOR).runs[0]
        )
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            os.killpg(doomed.pid, signal.SIGKILL)

    survivor = Worker(channel, metadata=worker_auth("survivor"), poll_wait=timedelta(seconds=1))
    survivor.handler("report.build")(lambda context: {"by": "survivor"})
    thread = threading.Thread(target=survivor.run)
    thread.start()
    try:
        wait_for(lambda: get(channel, job.id).status == jobs_pb2.JOB_STATUS_SUCCEEDED, timeout=30)
    finally:
        survivor.stop()
        thread.join(timeout=10)

    finished = get(channel, job.id)
    assert finished.attempt_count == 2
    runs = stub(channel).ListJobRuns(jobs_pb2.ListJobRunsRequest(job_id=job.id), metadata=OPERATOR).runs
    assert [r.status for r in runs] == [jobs_pb2.JOB_RUN_STATUS_SUCCEEDED, jobs_pb2.JOB_RUN_STATUS_FAILED]
    assert "lease" in runs[1].error and runs[1].id == dead_run.id
    with pytest.raises(grpc.RpcError) as late:
        stub(channel).CompleteJob(
            jobs_pb2.CompleteJobRequest(id=job.id, run_id=dead_run.id), metadata=worker_auth("proc")
        )
    assert late.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert dead_run.id in late.value.details()


def test_the_worker_command_runs_the_job_and_sigterm_lets_it_finish(
    channel: grpc.Channel, running: ServerThread, tmp_path: Path
) -> None:
    assert running.running is not None
    script = tmp_path / "job.sh"
    script.write_text(
        '#!/bin/sh\nread payload\nsleep 1\necho "{\\"got\\": $payload, \\"id\\": \\"$JOBTASK_JOB_ID\\"}"\n'
    )
    script.chmod(0o755)
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\necho 'disk full' >&2\nexit 3\n")
    failing.chmod(0o755)
    payload = jobs_pb2.Job().payload
    payload.update({"n": 7})
    job = create(channel, payload=payload)
    process = start_worker_process(
        f"127.0.0.1:{running.running.port}", tmp_path / "w1.log", str(script), lease=5
    )
    try:
        wait_for(lambda: get(channel, job.id).status == jobs_pb2.JOB_STATUS_RUNNING, timeout=30)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    done = get(channel, job.id)
    assert done.status == jobs_pb2.JOB_STATUS_SUCCEEDED
    assert dict(done.result.data) == {"got": {"n": 7.0}, "id": job.id}

    broken = create(channel)
    process = start_worker_process(
        f"127.0.0.1:{running.running.port}", tmp_path / "w2.log", str(failing), lease=5
    )
    try:
        wait_for(lambda: get(channel, broken.id).status == jobs_pb2.JOB_STATUS_FAILED, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert get(channel, broken.id).last_error == "exit status 3: disk full"


__all__ = ["free_port"]


@pytest.mark.postgres
def test_a_claim_waiting_on_one_replica_is_woken_by_a_job_created_on_another(
    serve: Callable[[Settings], ServerThread], settings: Settings, postgres_engine: Engine
) -> None:
    reset_postgres(postgres_engine)
    url = postgres_engine.url.render_as_string(hide_password=False)
    first, second = (serve(replace(settings, database_url=url)) for _ in range(2))
    assert first.running is not None and second.running is not None
    with (
        grpc.insecure_channel(f"127.0.0.1:{first.running.port}") as waiting_side,
        grpc.insecure_channel(f"127.0.0.1:{second.running.port}") as creating_side,
    ):
        first.running.runnable.poll_s = 60.0  # only a wake-up can answer in time
        pending = stub(waiting_side).ClaimJobs.future(
            jobs_pb2.ClaimJobsRequest(kinds=["far.away"], wait=seconds(10)),
            metadata=worker_auth("w"),
            timeout=15,
        )
        time.sleep(0.5)
        created_at = time.monotonic()
        job = create(creating_side, kind="far.away")
        claimed = pending.result()
        waited = time.monotonic() - created_at
    assert [c.job.id for c in claimed.jobs] == [job.id]
    print(f"woken across replicas after {waited * 1000:.1f} ms")
    assert waited < 2.0  # by the commit's NOTIFY: the fallback poll is a minute away


def test_a_result_the_server_refuses_fails_the_job_instead_of_stranding_it(channel: grpc.Channel) -> None:
    job = create(channel)
    worker = Worker(channel, metadata=worker_auth("w"), poll_wait=timedelta(seconds=1))
    worker.handler("report.build")(lambda context: {"blob": "x" * 2_000_000})
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(lambda: get(channel, job.id).status == jobs_pb2.JOB_STATUS_FAILED, timeout=30)
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert "refused the handler's result" in get(channel, job.id).last_error
    assert (worker.completed, worker.failed) == (0, 1)


def test_a_claim_cancelled_by_its_caller_gives_its_job_back(
    channel: grpc.Channel, running: ServerThread
) -> None:
    assert running.running is not None and running.app is not None
    jobs = stub(channel)
    job = create(channel)
    original = running.app.jobs.claim_jobs
    entered, leave = threading.Event(), threading.Event()

    def slow_claim(*args: object, **kwargs: object) -> object:
        entered.set()
        leave.wait(10)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    running.app.jobs.claim_jobs = slow_claim  # type: ignore[method-assign]
    try:
        pending = jobs.ClaimJobs.future(jobs_pb2.ClaimJobsRequest(), metadata=worker_auth("w"), timeout=15)
        assert entered.wait(10)
        pending.cancel()
        time.sleep(0.2)
        leave.set()
        wait_for(
            lambda: (
                len(jobs.ListJobRuns(jobs_pb2.ListJobRunsRequest(job_id=job.id), metadata=OPERATOR).runs) == 1
            )
        )
    finally:
        leave.set()
        running.app.jobs.claim_jobs = original  # type: ignore[method-assign]
    wait_for(lambda: get(channel, job.id).status == jobs_pb2.JOB_STATUS_PENDING)
    [run] = jobs.ListJobRuns(jobs_pb2.ListJobRunsRequest(job_id=job.id), metadata=OPERATOR).runs
    assert run.status == jobs_pb2.JOB_RUN_STATUS_CANCELLED and "released" in run.error
    assert get(channel, job.id).attempt_count == 0
