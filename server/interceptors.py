"""The interceptor every jobtask call passes: correlation id, authentication, the early
permission check, and the catch-all that turns a bug into INTERNAL with a correlation id."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import grpc

from core.common import context as core_context
from core.common.actor import Actor
from core.common.errors import StorageError, StorageUnavailableError
from core.common.result import ErrorCode, OperationError, OperationResult
from core.services.jobs import permissions as job_permissions
from core.services.tasks import permissions as task_permissions
from server import auth
from server.errors import rich_status

log = logging.getLogger(__name__)

CORRELATION_HEADER = "x-correlation-id"
PROTECTED_PREFIX = "/jobtask."

JOBS, TASKS, EVENTS = "/jobtask.v1.JobService/", "/jobtask.v1.TaskService/", "/jobtask.v1.EventService/"

# RPC -> the permission table and action it needs on some resource. An actor whose roles
# grant that action on no resource at all is refused before the servicer runs.
EARLY_CHECKS: Final[Mapping[str, tuple[ModuleType, str]]] = {
    JOBS + "CreateJob": (job_permissions, job_permissions.CREATE),
    JOBS + "GetJob": (job_permissions, job_permissions.READ),
    JOBS + "UpdateJob": (job_permissions, job_permissions.UPDATE),
    JOBS + "DeleteJob": (job_permissions, job_permissions.DELETE),
    JOBS + "ListJobs": (job_permissions, job_permissions.READ),
    JOBS + "ScheduleJob": (job_permissions, job_permissions.SCHEDULE),
    JOBS + "StartJob": (job_permissions, job_permissions.START),
    JOBS + "CancelJob": (job_permissions, job_permissions.CANCEL),
    JOBS + "CompleteJob": (job_permissions, job_permissions.COMPLETE),
    JOBS + "FailJob": (job_permissions, job_permissions.FAIL),
    JOBS + "ListPendingJobs": (job_permissions, job_permissions.READ),
    JOBS + "ListRunningJobs": (job_permissions, job_permissions.READ),
    JOBS + "ListJobRuns": (job_permissions, job_permissions.READ),
    JOBS + "PauseJob": (job_permissions, job_permissions.SCHEDULE),
    JOBS + "ResumeJob": (job_permissions, job_permissions.SCHEDULE),
    JOBS + "RunJobNow": (job_permissions, job_permissions.SCHEDULE),
    JOBS + "ListJobTasks": (job_permissions, job_permissions.READ),
    JOBS + "LinkTask": (task_permissions, task_permissions.UPDATE),
    JOBS + "UnlinkTask": (task_permissions, task_permissions.UPDATE),
    TASKS + "CreateTask": (task_permissions, task_permissions.CREATE),
    TASKS + "GetTask": (task_permissions, task_permissions.READ),
    TASKS + "UpdateTask": (task_permissions, task_permissions.UPDATE),
    TASKS + "DeleteTask": (task_permissions, task_permissions.DELETE),
    TASKS + "ListTasks": (task_permissions, task_permissions.READ),
    TASKS + "AssignTask": (task_permissions, task_permissions.ASSIGN),
    TASKS + "CompleteTask": (task_permissions, task_permissions.COMPLETE),
    TASKS + "CancelTask": (task_permissions, task_permissions.CANCEL),
    TASKS + "ReopenTask": (task_permissions, task_permissions.REOPEN),
    TASKS + "CreateSubtask": (task_permissions, task_permissions.CREATE),
    TASKS + "ListSubtasks": (task_permissions, task_permissions.READ),
    EVENTS + "Subscribe": (job_permissions, job_permissions.READ),
}


def early_refusal(method: str, actor: Actor) -> OperationError | None:
    """PERMISSION_DENIED when the actor's roles allow ``method`` on no resource at all."""
    check = EARLY_CHECKS.get(method)
    if check is None:
        return None
    table, action = check
    if table.may_ever(actor, action):
        return None
    resource = "job" if table is job_permissions else "task"
    return OperationResult.failure(
        ErrorCode.PERMISSION_DENIED,
        f"actor {actor.id} may not {action} any {resource}: "
        f"its roles ({', '.join(sorted(actor.roles)) or 'none'}) do not allow it",
        action=action,
        resource=resource,
    ).error


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: OperationError) -> None:
    status = rich_status(error)
    await context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)


if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor


class CallInterceptor(_ServerInterceptor):
    """Authenticates every jobtask call and guards it; health and reflection pass untouched."""

    def __init__(self, authenticator: auth.Authenticator) -> None:
        self._authenticator = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(PROTECTED_PREFIX):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._guard_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._guard_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # pragma: no cover - jobtask has no client-streaming RPCs

    async def _admit(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        """Set the correlation id and the actor for this call, or abort it."""
        metadata = dict(context.invocation_metadata() or ())
        supplied = metadata.get(CORRELATION_HEADER)
        correlation = supplied if isinstance(supplied, str) and 0 < len(supplied) <= 200 else uuid.uuid4().hex
        core_context.correlation_id.set(correlation)
        try:
            actor = self._authenticator.authenticate(context.invocation_metadata())
        except auth.Unauthenticated as exc:
            await _abort(context, OperationResult.unauthenticated(str(exc)).error)  # type: ignore[arg-type]
            raise AssertionError("unreachable: abort raises") from exc
        refusal = early_refusal(method, actor)
        if refusal is not None:
            await _abort(context, refusal)
        auth.current_actor.set(actor)
        return correlation

    @contextlib.asynccontextmanager
    async def _failures(
        self, context: grpc.aio.ServicerContext[Any, Any], method: str, correlation: str
    ) -> AsyncIterator[None]:
        """Turn what escapes a servicer into a status: storage trouble is retryable
        (UNAVAILABLE, ABORTED); anything else is logged and INTERNAL with the correlation id."""
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except StorageError as error:
            log.warning("%s: storage failed: %s", method, error)
            if isinstance(error, StorageUnavailableError):
                failure = OperationResult.unavailable("the database is unavailable; retry shortly")
            else:
                failure = OperationResult.failure(ErrorCode.ABORTED, "a concurrent change interfered; retry")
            await _abort(context, failure.error)  # type: ignore[arg-type]
        except Exception:
            log.exception("unexpected error in %s (correlation id %s)", method, correlation)
            internal = OperationResult.internal(
                f"internal error (correlation id {correlation})", correlation_id=correlation
            )
            await _abort(context, internal.error)  # type: ignore[arg-type]

    def _guard_unary(self, method: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            correlation = await self._admit(method, context)
            async with self._failures(context, method, correlation):
                return await inner(request, context)

        return guarded

    def _guard_stream(self, method: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            correlation = await self._admit(method, context)
            async with self._failures(context, method, correlation):
                async for response in inner(request, context):
                    yield response

        return guarded
