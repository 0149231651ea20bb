"""Every RPC over a real channel with the generated stubs and the call guard:
success, and each error class as its status code with the OperationResult in the details."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jobtask.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc, tasks_pb2, tasks_pb2_grpc

from core.common.errors import ConcurrencyError, StorageUnavailableError
from server.errors import operation_result_of
from tests.e2e.conftest import ServerThread, auth

OPERATOR = auth("op", roles=("operator",))
MEMBER = auth("ann", roles=("member",))
OTHER_MEMBER = auth("bob", roles=("member",))
VIEWER = auth("vic", roles=("viewer",))
STRANGER = auth("root", tenant="globex", roles=("admin",))
MISSING = str(uuid.uuid4())


def failure(call: Callable[[], Any], code: grpc.StatusCode) -> common_pb2.OperationResult:
    """Run ``call``, expect ``code``, and return the OperationResult of the details."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    error = raised.value
    assert error.code() is code, error.details()
    result = operation_result_of(error)
    assert result is not None
    assert common_pb2.ErrorCode.Name(result.code) == "ERROR_CODE_" + code.name
    return result


@pytest.fixture
def jobs(channel: grpc.Channel) -> jobs_pb2_grpc.JobServiceStub:
    return jobs_pb2_grpc.JobServiceStub(channel)


@pytest.fixture
def tasks(channel: grpc.Channel) -> tasks_pb2_grpc.TaskServiceStub:
    return tasks_pb2_grpc.TaskServiceStub(channel)


def new_job(jobs: Any, metadata: Any = MEMBER, **fields: Any) -> jobs_pb2.Job:
    job = jobs_pb2.Job(name=fields.pop("name", "nightly"), kind=fields.pop("kind", "report.build"), **fields)
    return jobs.CreateJob(jobs_pb2.CreateJobRequest(job=job), metadata=metadata).job


class TestJobRpcs:
    def test_create_get_update_list_delete(self, jobs: Any) -> None:
        payload = struct_pb2.Struct()
        payload.update({"day": "2026-11-28", "rows": 3})
        job = new_job(jobs, payload=payload, labels={"team": "data"}, priority=5)
        assert (job.status, job.owner, job.etag) == (jobs_pb2.JOB_STATUS_PENDING, "ann", "1")
        assert dict(job.payload) == {"day": "2026-11-28", "rows": 3.0}

        assert jobs.GetJob(jobs_pb2.GetJobRequest(id=job.id), metadata=MEMBER).job == job
        updated = jobs.UpdateJob(
            jobs_pb2.UpdateJobRequest(
                job=jobs_pb2.Job(id=job.id, description="daily"),
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
                etag=job.etag,
            ),
            metadata=MEMBER,
        ).job
        assert (updated.description, updated.etag) == ("daily", "2")
        listed = jobs.ListJobs(jobs_pb2.ListJobsRequest(labels={"team": "data"}), metadata=VIEWER)
        assert [j.id for j in listed.jobs] == [job.id]
        jobs.DeleteJob(jobs_pb2.DeleteJobRequest(id=job.id, etag="2"), metadata=MEMBER)
        failure(
            lambda: jobs.GetJob(jobs_pb2.GetJobRequest(id=job.id), metadata=MEMBER), grpc.StatusCode.NOT_FOUND
        )

    def test_the_lifecycle_of_a_retried_job(self, jobs: Any) -> None:
        policy = jobs_pb2.RetryPolicy(max_attempts=2, initial_backoff=duration_pb2.Duration(seconds=1))
        job = new_job(jobs, retry_policy=policy)
        schedule = jobs_pb2.Schedule(interval=duration_pb2.Duration(seconds=3600))
        scheduled = jobs.ScheduleJob(
            jobs_pb2.ScheduleJobRequest(id=job.id, schedule=schedule), metadata=OPERATOR
        )
        assert scheduled.job.status == jobs_pb2.JOB_STATUS_SCHEDULED
        started = jobs.StartJob(
            jobs_pb2.StartJobRequest(id=job.id, etag=scheduled.job.etag), metadata=OPERATOR
        )
        assert started.job.status == jobs_pb2.JOB_STATUS_RUNNING
        running = jobs.ListRunningJobs(jobs_pb2.ListRunningJobsRequest(), metadata=OPERATOR).jobs
        assert [j.id for j in running] == [job.id]
        failed = jobs.FailJob(jobs_pb2.FailJobRequest(id=job.id, error="disk full"), metadata=OPERATOR).job
        assert (failed.status, failed.last_error) == (jobs_pb2.JOB_STATUS_SCHEDULED, "disk full")
        jobs.StartJob(jobs_pb2.StartJobRequest(id=job.id), metadata=OPERATOR)
        result = jobs_pb2.JobResult(message="done")
        result.data.update({"rows": 7})
        done = jobs.CompleteJob(jobs_pb2.CompleteJobRequest(id=job.id, result=result), metadata=OPERATOR).job
        # The job recurs (interval schedule), so it is scheduled again.
        assert (done.status, done.result.message) == (jobs_pb2.JOB_STATUS_SCHEDULED, "done")
        runs = jobs.ListJobRuns(jobs_pb2.ListJobRunsRequest(job_id=job.id), metadata=MEMBER).runs
        assert [(r.attempt, r.status) for r in runs] == [
            (2, jobs_pb2.JOB_RUN_STATUS_SUCCEEDED),
            (1, jobs_pb2.JOB_RUN_STATUS_FAILED),
        ]
        cancelled = jobs.CancelJob(jobs_pb2.CancelJobRequest(id=job.id, reason="stop"), metadata=MEMBER).job
        assert cancelled.status == jobs_pb2.JOB_STATUS_CANCELLED

    def test_pending_jobs_and_a_permanent_failure(self, jobs: Any) -> None:
        job = new_job(jobs, retry_policy=jobs_pb2.RetryPolicy(max_attempts=5))
        pending = jobs.ListPendingJobs(
            jobs_pb2.ListPendingJobsRequest(kinds=["report.build"]), metadata=OPERATOR
        )
        assert [j.id for j in pending.jobs] == [job.id]
        jobs.StartJob(jobs_pb2.StartJobRequest(id=job.id), metadata=OPERATOR)
        failed = jobs.FailJob(
            jobs_pb2.FailJobRequest(id=job.id, error="bad input", permanent=True), metadata=OPERATOR
        )
        assert failed.job.status == jobs_pb2.JOB_STATUS_FAILED

    def test_stats_count_statuses_and_finished_runs(self, jobs: Any) -> None:
        done, failed = new_job(jobs), new_job(jobs)
        new_job(jobs)  # stays PENDING
        for job in (done, failed):
            jobs.StartJob(jobs_pb2.StartJobRequest(id=job.id), metadata=OPERATOR)
        jobs.CompleteJob(jobs_pb2.CompleteJobRequest(id=done.id), metadata=OPERATOR)
        jobs.FailJob(jobs_pb2.FailJobRequest(id=failed.id, error="x", permanent=True), metadata=OPERATOR)
        request = jobs_pb2.GetJobStatsRequest(bucket_width=duration_pb2.Duration(seconds=600))

        counted = jobs.GetJobStats(request, metadata=MEMBER)

        by_status = {jobs_pb2.JobStatus.Name(c.status): c.count for c in counted.status_counts}
        assert by_status == {
            "JOB_STATUS_PENDING": 1,
            "JOB_STATUS_SCHEDULED": 0,
            "JOB_STATUS_RUNNING": 0,
            "JOB_STATUS_SUCCEEDED": 1,
            "JOB_STATUS_FAILED": 1,
            "JOB_STATUS_CANCELLED": 0,
        }
        assert len(counted.run_counts) == 7  # an hour in ten-minute intervals, the last holding now
        assert counted.run_counts[-1].start_time.ToDatetime() <= counted.as_of_time.ToDatetime()
        assert sum(b.succeeded for b in counted.run_counts) == 1
        assert sum(b.failed for b in counted.run_counts) == 1
        assert not any(c.count for c in jobs.GetJobStats(request, metadata=OTHER_MEMBER).status_counts)
        refused = failure(
            lambda: jobs.GetJobStats(
                jobs_pb2.GetJobStatsRequest(window=duration_pb2.Duration(seconds=10)), metadata=MEMBER
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert [v.field for v in refused.field_violations] == ["window"]
        zero = failure(
            lambda: jobs.GetJobStats(
                jobs_pb2.GetJobStatsRequest(bucket_width=duration_pb2.Duration()), metadata=MEMBER
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert [v.field for v in zero.field_violations] == ["bucket_width"]

    def test_error_classes(self, jobs: Any) -> None:
        job = new_job(jobs)
        invalid = failure(
            lambda: jobs.CreateJob(jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(kind="k")), metadata=MEMBER),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert [v.field for v in invalid.field_violations] == ["job.name"]  # the request's path
        cron = jobs_pb2.Schedule(
            cron=jobs_pb2.CronSchedule(expression="0 9 * * MON-FRI", time_zone="Mars/Base")
        )
        zone = failure(
            lambda: jobs.ScheduleJob(
                jobs_pb2.ScheduleJobRequest(id=job.id, schedule=cron), metadata=OPERATOR
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert [v.field for v in zone.field_violations] == ["schedule.cron.time_zone"]
        failure(
            lambda: jobs.GetJob(jobs_pb2.GetJobRequest(id=MISSING), metadata=MEMBER),
            grpc.StatusCode.NOT_FOUND,
        )
        failure(
            lambda: jobs.GetJob(jobs_pb2.GetJobRequest(id=job.id), metadata=STRANGER),
            grpc.StatusCode.NOT_FOUND,
        )
        failure(
            lambda: jobs.GetJob(jobs_pb2.GetJobRequest(id=job.id), metadata=OTHER_MEMBER),
            grpc.StatusCode.NOT_FOUND,
        )
        failure(
            lambda: jobs.DeleteJob(jobs_pb2.DeleteJobRequest(id=job.id), metadata=VIEWER),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        refused = failure(
            lambda: jobs.CompleteJob(jobs_pb2.CompleteJobRequest(id=job.id), metadata=OPERATOR),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert dict(refused.details) == {"current_state": "PENDING", "attempted_state": "SUCCEEDED"}
        stale = failure(
            lambda: jobs.StartJob(jobs_pb2.StartJobRequest(id=job.id, etag="9"), metadata=OPERATOR),
            grpc.StatusCode.ABORTED,
        )
        assert stale.details["current_version"] == 1
        failure(
            lambda: jobs.ListJobs(jobs_pb2.ListJobsRequest(page_token="junk"), metadata=MEMBER),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        failure(
            lambda: jobs.ListJobRuns(jobs_pb2.ListJobRunsRequest(job_id="x"), metadata=MEMBER),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        failure(
            lambda: jobs.ListPendingJobs(jobs_pb2.ListPendingJobsRequest(limit=5000), metadata=OPERATOR),
            grpc.StatusCode.INVALID_ARGUMENT,
        )

    def test_a_request_nested_past_the_decoder_is_invalid_not_unknown(self, jobs: Any) -> None:
        request = jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="deep", kind="k"))
        level = request.job.payload
        for _ in range(120):
            level = level.fields["a"].struct_value
        result = failure(lambda: jobs.CreateJob(request, metadata=MEMBER), grpc.StatusCode.INVALID_ARGUMENT)
        assert [v.field for v in result.field_violations] == ["request"]
        assert "nested too deeply" in result.message + result.field_violations[0].description
        listed = jobs.ListJobs(jobs_pb2.ListJobsRequest(), metadata=MEMBER).jobs
        assert [j.name for j in listed if j.name == "deep"] == []

    def test_a_viewer_is_refused_before_the_servicer_runs(self, jobs: Any) -> None:
        denied = failure(
            lambda: jobs.StartJob(jobs_pb2.StartJobRequest(id=MISSING), metadata=VIEWER),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        assert dict(denied.details) == {"action": "start", "resource": "job"}


class TestTaskRpcs:
    def test_a_task_tree_through_its_lifecycle(self, tasks: Any, jobs: Any) -> None:
        job = new_job(jobs)
        root = tasks.CreateTask(
            tasks_pb2.CreateTaskRequest(
                task=tasks_pb2.Task(title="Release", job_id=job.id, priority=tasks_pb2.TASK_PRIORITY_HIGH)
            ),
            metadata=MEMBER,
        ).task
        child = tasks.CreateSubtask(
            tasks_pb2.CreateSubtaskRequest(parent_id=root.id, task=tasks_pb2.Task(title="Notes")),
            metadata=MEMBER,
        ).task
        assert (child.job_id, child.parent_id) == (job.id, root.id)
        assigned = tasks.AssignTask(
            tasks_pb2.AssignTaskRequest(id=child.id, assignee="carl"), metadata=MEMBER
        ).task
        carl = auth("carl", roles=("member",))
        progress = tasks.UpdateTask(
            tasks_pb2.UpdateTaskRequest(
                task=tasks_pb2.Task(id=child.id, status=tasks_pb2.TASK_STATUS_IN_PROGRESS),
                update_mask=field_mask_pb2.FieldMask(paths=["status"]),
                etag=assigned.etag,
            ),
            metadata=carl,
        ).task
        assert progress.status == tasks_pb2.TASK_STATUS_IN_PROGRESS
        open_below = failure(
            lambda: tasks.CompleteTask(tasks_pb2.CompleteTaskRequest(id=root.id), metadata=MEMBER),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert list(open_below.details["open_subtasks"]) == [child.id]
        tasks.CompleteTask(tasks_pb2.CompleteTaskRequest(id=child.id), metadata=carl)
        tasks.ReopenTask(tasks_pb2.ReopenTaskRequest(id=child.id), metadata=carl)
        cancelled = tasks.CancelTask(
            tasks_pb2.CancelTaskRequest(id=root.id, reason="dropped"), metadata=MEMBER
        ).task
        assert cancelled.status == tasks_pb2.TASK_STATUS_CANCELLED
        below = tasks.ListSubtasks(tasks_pb2.ListSubtasksRequest(parent_id=root.id), metadata=MEMBER).tasks
        assert [(t.id, t.status) for t in below] == [(child.id, tasks_pb2.TASK_STATUS_CANCELLED)]
        mine = tasks.ListTasks(tasks_pb2.ListTasksRequest(job_id=job.id), metadata=carl).tasks
        assert [t.id for t in mine] == [child.id]
        tasks.DeleteTask(tasks_pb2.DeleteTaskRequest(id=root.id), metadata=MEMBER)
        failure(
            lambda: tasks.GetTask(tasks_pb2.GetTaskRequest(id=child.id), metadata=MEMBER),
            grpc.StatusCode.NOT_FOUND,
        )

    def test_error_classes(self, tasks: Any) -> None:
        task = tasks.CreateTask(
            tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(title="t")), metadata=MEMBER
        ).task
        big = failure(
            lambda: tasks.CreateTask(
                tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(title="x" * 10_240)), metadata=MEMBER
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert [v.field for v in big.field_violations] == ["task.title"]  # the request's path
        priority = failure(
            lambda: tasks.CreateTask(
                tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(title="t", priority=42)),
                metadata=MEMBER,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert [v.field for v in priority.field_violations] == ["task.priority"]
        failure(
            lambda: tasks.CreateSubtask(
                tasks_pb2.CreateSubtaskRequest(parent_id=task.id, task=tasks_pb2.Task(title="c")),
                metadata=STRANGER,
            ),
            grpc.StatusCode.NOT_FOUND,
        )
        failure(
            lambda: tasks.GetTask(tasks_pb2.GetTaskRequest(id=task.id), metadata=STRANGER),
            grpc.StatusCode.NOT_FOUND,
        )
        failure(
            lambda: tasks.CancelTask(tasks_pb2.CancelTaskRequest(id=task.id), metadata=VIEWER),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        failure(
            lambda: tasks.ReopenTask(tasks_pb2.ReopenTaskRequest(id=task.id), metadata=MEMBER),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        failure(
            lambda: tasks.AssignTask(
                tasks_pb2.AssignTaskRequest(id=task.id, etag="7", assignee="x"), metadata=MEMBER
            ),
            grpc.StatusCode.ABORTED,
        )
        failure(
            lambda: tasks.UpdateTask(
                tasks_pb2.UpdateTaskRequest(
                    task=tasks_pb2.Task(id=task.id), update_mask=field_mask_pb2.FieldMask()
                ),
                metadata=MEMBER,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )


class TestAuthentication:
    @pytest.mark.parametrize(
        "metadata",
        [
            [],
            [("authorization", "Bearer not-a-token")],
            [("x-actor-id", "root"), ("x-actor-tenant", "acme"), ("x-actor-roles", "admin")],
        ],
        ids=["none", "garbage", "identity-headers-in-jwt-mode"],
    )
    def test_calls_without_a_valid_token_are_unauthenticated(self, jobs: Any, metadata: Any) -> None:
        failure(
            lambda: jobs.ListJobs(jobs_pb2.ListJobsRequest(), metadata=metadata),
            grpc.StatusCode.UNAUTHENTICATED,
        )

    def test_health_needs_no_identity(self, channel: grpc.Channel) -> None:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "jobtask.v1.JobService", "jobtask.v1.TaskService"):
            response = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_an_unexpected_error_is_internal_with_a_correlation_id_only(
    server: ServerThread, channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    assert server.app is not None

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret stack detail")

    server.app.jobs.get_job = broken
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    result = failure(
        lambda: stub.GetJob(
            jobs_pb2.GetJobRequest(id=MISSING), metadata=[*MEMBER, ("x-correlation-id", "trace-123")]
        ),
        grpc.StatusCode.INTERNAL,
    )
    assert result.message == "internal error (correlation id trace-123)"
    assert "secret" not in result.message
    assert "trace-123" in caplog.text
    assert "secret stack detail" in caplog.text


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StorageUnavailableError("connection refused"), grpc.StatusCode.UNAVAILABLE),
        (ConcurrencyError("deadlock detected"), grpc.StatusCode.ABORTED),
    ],
)
def test_storage_outages_are_retryable_statuses(
    server: ServerThread, channel: grpc.Channel, error: Exception, code: grpc.StatusCode
) -> None:
    assert server.app is not None

    def away(*_: Any, **__: Any) -> Any:
        raise error

    server.app.jobs.get_job = away
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    result = failure(lambda: stub.GetJob(jobs_pb2.GetJobRequest(id=MISSING), metadata=MEMBER), code)
    assert "retry" in result.message


def _far(seconds: int) -> Any:
    from google.protobuf import timestamp_pb2

    return timestamp_pb2.Timestamp(seconds=seconds)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (
            jobs_pb2.Job(name="n", kind="k", schedule=jobs_pb2.Schedule(run_at=_far(10**12))),
            "job.schedule.run_at",
        ),
        (
            jobs_pb2.Job(
                name="n", kind="k", schedule=jobs_pb2.Schedule(interval=duration_pb2.Duration(seconds=10**15))
            ),
            "job.schedule.interval",
        ),
        (
            jobs_pb2.Job(
                name="n",
                kind="k",
                payload=struct_pb2.Struct(fields={"x": struct_pb2.Value(number_value=float("nan"))}),
            ),
            "job.payload",
        ),
    ],
    ids=["timestamp-out-of-range", "duration-out-of-range", "nan-in-payload"],
)
def test_unrepresentable_values_are_invalid_arguments(jobs: Any, request_: jobs_pb2.Job, field: str) -> None:
    result = failure(
        lambda: jobs.CreateJob(jobs_pb2.CreateJobRequest(job=request_), metadata=MEMBER),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert [v.field for v in result.field_violations] == [field]
