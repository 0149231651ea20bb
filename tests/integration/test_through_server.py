"""Jobs and tasks together through the real server: reactions, counters, scheduling RPCs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc, tasks_pb2, tasks_pb2_grpc

from tests.e2e.conftest import auth

ANN = auth("ann", roles=("member",))
OPS = auth("ops", roles=("operator",))


def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def stubs(channel: grpc.Channel) -> tuple[Any, Any]:
    return jobs_pb2_grpc.JobServiceStub(channel), tasks_pb2_grpc.TaskServiceStub(channel)


def test_cancelling_a_job_cancels_its_open_tasks_and_counters_stay_true(stubs: tuple[Any, Any]) -> None:
    jobs, tasks = stubs
    job = jobs.CreateJob(
        jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="release", kind="k")), metadata=ANN
    ).job
    made = [
        tasks.CreateTask(
            tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(title=f"t{n}", job_id=job.id)), metadata=ANN
        )
        for n in range(4)
    ]
    tasks.CompleteTask(tasks_pb2.CompleteTaskRequest(id=made[3].task.id), metadata=ANN)

    def job_now() -> jobs_pb2.Job:
        return jobs.GetJob(jobs_pb2.GetJobRequest(id=job.id), metadata=ANN).job

    eventually(lambda: (job_now().task_total, job_now().task_done) == (4, 1))
    jobs.CancelJob(jobs_pb2.CancelJobRequest(id=job.id, reason="dropped"), metadata=ANN)

    def statuses() -> list[int]:
        listed = jobs.ListJobTasks(jobs_pb2.ListJobTasksRequest(job_id=job.id), metadata=ANN).tasks
        return [t.status for t in listed]

    eventually(
        lambda: statuses() == [tasks_pb2.TASK_STATUS_CANCELLED] * 3 + [tasks_pb2.TASK_STATUS_COMPLETED]
    )
    loose = tasks.CreateTask(
        tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(title="loose")), metadata=ANN
    ).task
    linked = jobs.LinkTask(jobs_pb2.LinkTaskRequest(job_id=job.id, task_id=loose.id), metadata=ANN).task
    assert linked.job_id == job.id
    eventually(lambda: job_now().task_total == 5)
    jobs.UnlinkTask(jobs_pb2.UnlinkTaskRequest(job_id=job.id, task_id=loose.id), metadata=ANN)
    eventually(lambda: job_now().task_total == 4)
    with pytest.raises(grpc.RpcError) as raised:
        jobs.LinkTask(
            jobs_pb2.LinkTaskRequest(job_id=job.id, task_id=loose.id), metadata=auth("vic", roles=("viewer",))
        )
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED


def test_the_server_scheduler_fires_due_jobs_and_honours_pause(stubs: tuple[Any, Any]) -> None:
    jobs, _ = stubs
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    schedule = jobs_pb2.Schedule(run_at=now)
    job = jobs.CreateJob(
        jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="soon", kind="k", schedule=schedule)), metadata=ANN
    ).job
    held = jobs.CreateJob(
        jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="held", kind="k", schedule=schedule)), metadata=ANN
    ).job
    paused = jobs.PauseJob(jobs_pb2.PauseJobRequest(id=held.id), metadata=OPS).job
    assert paused.paused

    def status(job_id: str) -> int:
        return jobs.GetJob(jobs_pb2.GetJobRequest(id=job_id), metadata=ANN).job.status

    eventually(lambda: status(job.id) == jobs_pb2.JOB_STATUS_PENDING)
    time.sleep(1.5)  # a scheduler step or more later, the paused job is still waiting
    assert status(held.id) == jobs_pb2.JOB_STATUS_SCHEDULED
    assert (
        jobs.RunJobNow(jobs_pb2.RunJobNowRequest(id=held.id), metadata=OPS).job.status
        == jobs_pb2.JOB_STATUS_PENDING
    )
    resumed = jobs.ResumeJob(jobs_pb2.ResumeJobRequest(id=held.id), metadata=OPS).job
    assert not resumed.paused
