"""JobServicer: the JobService RPCs over core.services.jobs.JobService."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from jobtask.v1 import jobs_pb2, jobs_pb2_grpc

from core.common.actor import Actor
from core.common.result import OperationResult
from core.services.jobs import stats, types
from core.services.jobs.runnable import RunnableJobs
from core.services.jobs.service import JobService
from core.services.jobs.types import Claim
from core.services.tasks.service import TaskService
from server import auth
from server.conversions import jobs as convert
from server.conversions import tasks as task_convert
from server.conversions.common import InvalidRequest, parse_etag, parse_uuid, require_uuid, to_timestamp
from server.servicers.base import Servicer

DEFAULT_LIMIT = 100
# A long poll answers this long before the caller's deadline, so the answer arrives in time.
CLAIM_DEADLINE_MARGIN_S = 0.5

T = TypeVar("T")


class JobServicer(Servicer, jobs_pb2_grpc.JobServiceServicer):
    """Converts JobService requests to domain calls and the results back."""

    def __init__(
        self,
        *,
        jobs: JobService,
        authenticator: auth.Authenticator,
        tasks: TaskService,
        runnable: RunnableJobs | None = None,
        executor: Executor | None = None,
        claimed: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(authenticator=authenticator)
        self._jobs = jobs
        # ListJobTasks, LinkTask and UnlinkTask are JobService RPCs about tasks: TaskService's.
        self._tasks = tasks
        self._runnable = runnable or RunnableJobs()
        self._executor = executor
        # Hears how many jobs each ClaimJobs handed out (the metrics).
        self._claimed = claimed or (lambda count: None)

    def _in_thread(self, function: Callable[[], T]) -> asyncio.Future[T]:
        """``function`` (database work) running on the worker threads, in this call's context."""
        call = contextvars.copy_context().run
        return asyncio.get_running_loop().run_in_executor(self._executor, call, function)

    async def _claim(
        self, actor: Actor, claim: Callable[[], OperationResult[list[Claim]]], context: Any
    ) -> OperationResult[list[Claim]]:
        """One claim; when the call is cancelled meanwhile, the jobs it took go back."""
        running = self._in_thread(claim)

        def give_back(done: asyncio.Future[OperationResult[list[Claim]]]) -> None:
            if not done.cancelled() and done.exception() is None and done.result().ok and done.result().value:
                self._in_thread(lambda: self._jobs.release_claims(actor, done.result().value))

        try:
            claimed = await asyncio.shield(running)
        except asyncio.CancelledError:
            running.add_done_callback(give_back)
            raise
        if claimed.ok and claimed.value and context.cancelled():
            give_back(running)
            return OperationResult.success([])
        return claimed

    def CreateJob(self, request: jobs_pb2.CreateJobRequest, context: Any) -> jobs_pb2.CreateJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.CreateJobResponse]:
            spec = convert.job_create_from_proto(request.job, request.request_id)
            return self._jobs.create_job(actor, spec).map(
                lambda j: jobs_pb2.CreateJobResponse(job=convert.job_to_proto(j))
            )

        return self._answer(context, jobs_pb2.CreateJobResponse, work, convert.JOB_PATHS)

    def GetJob(self, request: jobs_pb2.GetJobRequest, context: Any) -> jobs_pb2.GetJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.GetJobResponse]:
            job_id = require_uuid("id", request.id)
            return self._jobs.get_job(actor, job_id).map(
                lambda j: jobs_pb2.GetJobResponse(job=convert.job_to_proto(j))
            )

        return self._answer(context, jobs_pb2.GetJobResponse, work)

    def UpdateJob(self, request: jobs_pb2.UpdateJobRequest, context: Any) -> jobs_pb2.UpdateJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.UpdateJobResponse]:
            job_id = require_uuid("job.id", request.job.id)
            update = convert.job_update_from_proto(request.job, list(request.update_mask.paths))
            return self._jobs.update_job(
                actor, job_id, update, expected_version=parse_etag(request.etag)
            ).map(lambda j: jobs_pb2.UpdateJobResponse(job=convert.job_to_proto(j)))

        return self._answer(context, jobs_pb2.UpdateJobResponse, work, convert.JOB_PATHS)

    def DeleteJob(self, request: jobs_pb2.DeleteJobRequest, context: Any) -> jobs_pb2.DeleteJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.DeleteJobResponse]:
            job_id = require_uuid("id", request.id)
            deleted = self._jobs.delete_job(actor, job_id, expected_version=parse_etag(request.etag))
            return deleted.map(lambda _: jobs_pb2.DeleteJobResponse())

        return self._answer(context, jobs_pb2.DeleteJobResponse, work)

    def ListJobs(self, request: jobs_pb2.ListJobsRequest, context: Any) -> jobs_pb2.ListJobsResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.ListJobsResponse]:
            filters = convert.filters_from_proto(request)
            page = self._jobs.list_jobs(
                actor, filters, page_size=request.page_size, page_token=request.page_token
            )
            return page.map(
                lambda p: jobs_pb2.ListJobsResponse(
                    jobs=[convert.job_to_proto(j) for j in p.items], next_page_token=p.next_page_token
                )
            )

        return self._answer(context, jobs_pb2.ListJobsResponse, work, convert.LIST_PATHS)

    def ScheduleJob(self, request: jobs_pb2.ScheduleJobRequest, context: Any) -> jobs_pb2.ScheduleJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.ScheduleJobResponse]:
            job_id = require_uuid("id", request.id)
            schedule = convert.schedule_from_proto(request.schedule) if request.HasField("schedule") else None
            scheduled = self._jobs.schedule_job(
                actor, job_id, schedule, expected_version=parse_etag(request.etag)
            )
            return scheduled.map(lambda j: jobs_pb2.ScheduleJobResponse(job=convert.job_to_proto(j)))

        return self._answer(context, jobs_pb2.ScheduleJobResponse, work, convert.SCHEDULE_PATHS)

    def StartJob(self, request: jobs_pb2.StartJobRequest, context: Any) -> jobs_pb2.StartJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.StartJobResponse]:
            job_id = require_uuid("id", request.id)
            started = self._jobs.start_job(actor, job_id, expected_version=parse_etag(request.etag))
            return started.map(lambda j: jobs_pb2.StartJobResponse(job=convert.job_to_proto(j)))

        return self._answer(context, jobs_pb2.StartJobResponse, work)

    def CancelJob(self, request: jobs_pb2.CancelJobRequest, context: Any) -> jobs_pb2.CancelJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.CancelJobResponse]:
            job_id = require_uuid("id", request.id)
            cancelled = self._jobs.cancel_job(
                actor, job_id, request.reason, expected_version=parse_etag(request.etag)
            )
            return cancelled.map(lambda j: jobs_pb2.CancelJobResponse(job=convert.job_to_proto(j)))

        return self._answer(context, jobs_pb2.CancelJobResponse, work)

    def CompleteJob(self, request: jobs_pb2.CompleteJobRequest, context: Any) -> jobs_pb2.CompleteJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.CompleteJobResponse]:
            job_id = require_uuid("id", request.id)
            result = convert.result_from_proto(request.result) if request.HasField("result") else None
            completed = self._jobs.complete_job(
                actor,
                job_id,
                result,
                run_id=parse_uuid("run_id", request.run_id, required=False),
                expected_version=parse_etag(request.etag),
            )
            return completed.map(lambda j: jobs_pb2.CompleteJobResponse(job=convert.job_to_proto(j)))

        return self._answer(context, jobs_pb2.CompleteJobResponse, work)

    def FailJob(self, request: jobs_pb2.FailJobRequest, context: Any) -> jobs_pb2.FailJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.FailJobResponse]:
            job_id = require_uuid("id", request.id)
            failed = self._jobs.fail_job(
                actor,
                job_id,
                request.error,
                retryable=not request.permanent,
                run_id=parse_uuid("run_id", request.run_id, required=False),
                expected_version=parse_etag(request.etag),
            )
            return failed.map(lambda j: jobs_pb2.FailJobResponse(job=convert.job_to_proto(j)))

        return self._answer(context, jobs_pb2.FailJobResponse, work)

    def ListPendingJobs(
        self, request: jobs_pb2.ListPendingJobsRequest, context: Any
    ) -> jobs_pb2.ListPendingJobsResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.ListPendingJobsResponse]:
            found = self._jobs.get_pending_jobs(
                actor, kinds=frozenset(request.kinds), limit=request.limit or DEFAULT_LIMIT
            )
            return found.map(
                lambda js: jobs_pb2.ListPendingJobsResponse(jobs=[convert.job_to_proto(j) for j in js])
            )

        return self._answer(context, jobs_pb2.ListPendingJobsResponse, work)

    def ListRunningJobs(
        self, request: jobs_pb2.ListRunningJobsRequest, context: Any
    ) -> jobs_pb2.ListRunningJobsResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.ListRunningJobsResponse]:
            found = self._jobs.get_running_jobs(
                actor, kinds=frozenset(request.kinds), limit=request.limit or DEFAULT_LIMIT
            )
            return found.map(
                lambda js: jobs_pb2.ListRunningJobsResponse(jobs=[convert.job_to_proto(j) for j in js])
            )

        return self._answer(context, jobs_pb2.ListRunningJobsResponse, work)

    async def ClaimJobs(self, request: jobs_pb2.ClaimJobsRequest, context: Any) -> jobs_pb2.ClaimJobsResponse:
        """Claim at once, or wait (on the event loop, holding no thread) until a job of the
        caller's tenant may have become runnable, and claim again; until ``wait`` is over."""

        async def work(actor: Actor) -> OperationResult[jobs_pb2.ClaimJobsResponse]:
            wait = convert.optional_duration(request, "wait")
            if wait is not None and not 0 <= wait.total_seconds() <= types.MAX_CLAIM_WAIT.total_seconds():
                raise InvalidRequest("wait", f"must be between 0 and {types.MAX_CLAIM_WAIT.seconds}s")
            lease = convert.optional_duration(request, "lease_duration")
            if lease is None:
                lease = types.DEFAULT_LEASE

            def claim() -> OperationResult[list[Claim]]:
                return self._jobs.claim_jobs(
                    actor,
                    kinds=frozenset(request.kinds),
                    labels=dict(request.labels),
                    max_jobs=request.max_jobs or 1,
                    lease_duration=lease,
                    worker_id=request.worker_id,
                )

            loop = asyncio.get_running_loop()
            budget = 0.0 if wait is None else wait.total_seconds()
            remaining = context.time_remaining()
            if remaining is not None:
                budget = min(budget, remaining - CLAIM_DEADLINE_MARGIN_S)
            until = loop.time() + budget
            with self._runnable.watch(actor.tenant) as waiter:
                while True:
                    claimed = await self._claim(actor, claim, context)
                    left = until - loop.time()
                    if not claimed.ok or claimed.value or left <= 0 or self._runnable.closed:
                        break
                    await waiter.wait(min(left, self._runnable.poll_s))
            if claimed.ok and claimed.value:
                self._claimed(len(claimed.value))
            return claimed.map(
                lambda claims: jobs_pb2.ClaimJobsResponse(jobs=[convert.claim_to_proto(c) for c in claims])
            )

        return await self._answer_async(context, jobs_pb2.ClaimJobsResponse, work)

    def HeartbeatJob(
        self, request: jobs_pb2.HeartbeatJobRequest, context: Any
    ) -> jobs_pb2.HeartbeatJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.HeartbeatJobResponse]:
            job_id, run_id = require_uuid("id", request.id), require_uuid("run_id", request.run_id)
            beat = self._jobs.heartbeat_job(
                actor,
                job_id,
                run_id,
                lease_duration=convert.optional_duration(request, "lease_duration"),
                progress=request.progress if request.HasField("progress") else None,
                progress_message=request.progress_message if request.HasField("progress_message") else None,
            )
            return beat.map(_heartbeat_to_proto)

        return self._answer(context, jobs_pb2.HeartbeatJobResponse, work)

    def ListJobRuns(self, request: jobs_pb2.ListJobRunsRequest, context: Any) -> jobs_pb2.ListJobRunsResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.ListJobRunsResponse]:
            job_id = require_uuid("job_id", request.job_id)
            page = self._jobs.get_job_history(
                actor, job_id, page_size=request.page_size, page_token=request.page_token
            )
            return page.map(
                lambda p: jobs_pb2.ListJobRunsResponse(
                    runs=[convert.run_to_proto(r) for r in p.items], next_page_token=p.next_page_token
                )
            )

        return self._answer(context, jobs_pb2.ListJobRunsResponse, work)

    def GetJobStats(self, request: jobs_pb2.GetJobStatsRequest, context: Any) -> jobs_pb2.GetJobStatsResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.GetJobStatsResponse]:
            window = convert.optional_duration(request, "window")
            width = convert.optional_duration(request, "bucket_width")
            counted = self._jobs.get_job_stats(
                actor,
                window=stats.DEFAULT_WINDOW if window is None else window,  # a zero set is refused
                bucket_width=stats.DEFAULT_BUCKET if width is None else width,
            )
            return counted.map(convert.stats_to_proto)

        return self._answer(context, jobs_pb2.GetJobStatsResponse, work)

    def PauseJob(self, request: jobs_pb2.PauseJobRequest, context: Any) -> jobs_pb2.PauseJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.PauseJobResponse]:
            job_id = require_uuid("id", request.id)
            paused = self._jobs.pause_job(actor, job_id, expected_version=parse_etag(request.etag))
            return paused.map(lambda j: jobs_pb2.PauseJobResponse(job=convert.job_to_proto(j)))

        return self._answer(context, jobs_pb2.PauseJobResponse, work)

    def ResumeJob(self, request: jobs_pb2.ResumeJobRequest, context: Any) -> jobs_pb2.ResumeJobResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.ResumeJobResponse]:
            job_id = require_uuid("id", request.id)
            resumed = self._jobs.resume_job(actor, job_id, expected_version=parse_etag(request.etag))
            return resumed.map(lambda j: jobs_pb2.ResumeJobResponse(job=convert.job_to_proto(j)))

        return self._answer(context, jobs_pb2.ResumeJobResponse, work)

    def RunJobNow(self, request: jobs_pb2.RunJobNowRequest, context: Any) -> jobs_pb2.RunJobNowResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.RunJobNowResponse]:
            job_id = require_uuid("id", request.id)
            promoted = self._jobs.run_job_now(actor, job_id, expected_version=parse_etag(request.etag))
            return promoted.map(lambda j: jobs_pb2.RunJobNowResponse(job=convert.job_to_proto(j)))

        return self._answer(context, jobs_pb2.RunJobNowResponse, work)

    def ListJobTasks(
        self, request: jobs_pb2.ListJobTasksRequest, context: Any
    ) -> jobs_pb2.ListJobTasksResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.ListJobTasksResponse]:
            job_id = require_uuid("job_id", request.job_id)
            page = self._tasks.list_job_tasks(
                actor, job_id, page_size=request.page_size, page_token=request.page_token
            )
            return page.map(
                lambda p: jobs_pb2.ListJobTasksResponse(
                    tasks=[task_convert.task_to_proto(t) for t in p.items], next_page_token=p.next_page_token
                )
            )

        return self._answer(context, jobs_pb2.ListJobTasksResponse, work)

    def LinkTask(self, request: jobs_pb2.LinkTaskRequest, context: Any) -> jobs_pb2.LinkTaskResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.LinkTaskResponse]:
            job_id, task_id = require_uuid("job_id", request.job_id), require_uuid("task_id", request.task_id)
            linked = self._tasks.link_task(actor, job_id, task_id, expected_version=parse_etag(request.etag))
            return linked.map(lambda t: jobs_pb2.LinkTaskResponse(task=task_convert.task_to_proto(t)))

        return self._answer(context, jobs_pb2.LinkTaskResponse, work)

    def UnlinkTask(self, request: jobs_pb2.UnlinkTaskRequest, context: Any) -> jobs_pb2.UnlinkTaskResponse:
        def work(actor: Actor) -> OperationResult[jobs_pb2.UnlinkTaskResponse]:
            job_id, task_id = require_uuid("job_id", request.job_id), require_uuid("task_id", request.task_id)
            unlinked = self._tasks.unlink_task(
                actor, job_id, task_id, expected_version=parse_etag(request.etag)
            )
            return unlinked.map(lambda t: jobs_pb2.UnlinkTaskResponse(task=task_convert.task_to_proto(t)))

        return self._answer(context, jobs_pb2.UnlinkTaskResponse, work)


def _heartbeat_to_proto(lease: types.Lease) -> jobs_pb2.HeartbeatJobResponse:
    message = jobs_pb2.HeartbeatJobResponse(cancel_requested=lease.cancel_requested)
    if lease.run.lease_expires_at is not None:
        message.lease_expire_time.CopyFrom(to_timestamp(lease.run.lease_expires_at))
    return message
