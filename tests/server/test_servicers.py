"""The servicers in isolation with grpc_testing: conversions, results and statuses."""

from __future__ import annotations

from typing import Any

import grpc
import grpc_testing
import pytest
from google.protobuf import field_mask_pb2
from jobtask.v1 import jobs_pb2, tasks_pb2

from core.common.clock import FakeClock
from core.services.jobs.service import JobService
from core.services.tasks.service import TaskService
from modules.memory import InMemoryUnitOfWorkFactory
from server.app import JOB_SERVICE, TASK_SERVICE
from server.auth import Authenticator, AuthMode
from server.servicers.jobs import JobServicer
from server.servicers.tasks import TaskServicer

OPERATOR = (("x-actor-id", "op"), ("x-actor-tenant", "acme"), ("x-actor-roles", "operator"))


@pytest.fixture
def server(clock: FakeClock) -> Any:
    uow = InMemoryUnitOfWorkFactory()
    authenticator = Authenticator(AuthMode.HEADERS)
    jobs = JobService(uow=uow, clock=clock)
    tasks = TaskService(uow=uow, jobs=jobs, clock=clock)
    servicers = {
        JOB_SERVICE: JobServicer(jobs=jobs, tasks=tasks, authenticator=authenticator),
        TASK_SERVICE: TaskServicer(tasks=tasks, authenticator=authenticator),
    }
    return grpc_testing.server_from_dictionary(servicers, grpc_testing.strict_real_time())


def call(
    server: Any, service: Any, method: str, request: Any, metadata: Any = OPERATOR
) -> tuple[Any, Any, Any]:
    rpc = server.invoke_unary_unary(
        service.methods_by_name[method], invocation_metadata=metadata, request=request, timeout=5
    )
    response, _trailing, code, details = rpc.termination()
    return response, code, details


def test_create_then_get_a_job(server: Any) -> None:
    request = jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="n", kind="k", labels={"a": "b"}))
    created, code, _ = call(server, JOB_SERVICE, "CreateJob", request)
    assert code is grpc.StatusCode.OK
    assert (created.job.status, created.job.etag, created.job.owner) == (
        jobs_pb2.JOB_STATUS_PENDING,
        "1",
        "op",
    )
    got, code, _ = call(server, JOB_SERVICE, "GetJob", jobs_pb2.GetJobRequest(id=created.job.id))
    assert got.job == created.job


@pytest.mark.parametrize(
    ("method", "request_", "code"),
    [
        ("GetJob", jobs_pb2.GetJobRequest(id="not-a-uuid"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            "GetJob",
            jobs_pb2.GetJobRequest(id="01a221e8-15e8-72d6-9dc4-7b2e089fda4e"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            "CreateJob",
            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(kind="k")),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ("ListJobs", jobs_pb2.ListJobsRequest(statuses=[99]), grpc.StatusCode.INVALID_ARGUMENT),
        ("UpdateJob", jobs_pb2.UpdateJobRequest(job=jobs_pb2.Job(id="x")), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_failures_set_the_status(server: Any, method: str, request_: Any, code: grpc.StatusCode) -> None:
    response, got, details = call(server, JOB_SERVICE, method, request_)
    assert response == type(response)()
    assert got is code
    assert details


def test_no_identity_is_unauthenticated(server: Any) -> None:
    _, code, details = call(server, JOB_SERVICE, "ListJobs", jobs_pb2.ListJobsRequest(), metadata=())
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "x-actor-id" in details


def test_update_with_a_mask_and_an_etag(server: Any) -> None:
    created, _, _ = call(
        server, JOB_SERVICE, "CreateJob", jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="n", kind="k"))
    )
    job = jobs_pb2.Job(id=created.job.id, name="renamed", priority=3)
    mask = field_mask_pb2.FieldMask(paths=["name"])
    updated, code, _ = call(
        server, JOB_SERVICE, "UpdateJob", jobs_pb2.UpdateJobRequest(job=job, update_mask=mask, etag="1")
    )
    assert code is grpc.StatusCode.OK
    assert (updated.job.name, updated.job.priority, updated.job.etag) == ("renamed", 0, "2")
    _, code, _ = call(
        server, JOB_SERVICE, "UpdateJob", jobs_pb2.UpdateJobRequest(job=job, update_mask=mask, etag="1")
    )
    assert code is grpc.StatusCode.ABORTED
    bad_mask = field_mask_pb2.FieldMask(paths=["status"])
    _, code, details = call(
        server, JOB_SERVICE, "UpdateJob", jobs_pb2.UpdateJobRequest(job=job, update_mask=bad_mask)
    )
    assert (code, "update_mask" in details) == (grpc.StatusCode.INVALID_ARGUMENT, True)


def test_a_task_tree(server: Any) -> None:
    parent, _, _ = call(
        server, TASK_SERVICE, "CreateTask", tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(title="p"))
    )
    assert parent.task.priority == tasks_pb2.TASK_PRIORITY_MEDIUM
    request = tasks_pb2.CreateSubtaskRequest(parent_id=parent.task.id, task=tasks_pb2.Task(title="c"))
    child, code, _ = call(server, TASK_SERVICE, "CreateSubtask", request)
    assert (code, child.task.parent_id) == (grpc.StatusCode.OK, parent.task.id)
    _, code, details = call(
        server, TASK_SERVICE, "CompleteTask", tasks_pb2.CompleteTaskRequest(id=parent.task.id)
    )
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert child.task.id in details
