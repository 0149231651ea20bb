"""The guard every jobtask call passes: correlation id, authentication, the early
permission check, and the catch-all that turns a bug into INTERNAL with a correlation id."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from types import ModuleType
from typing import Any, Final

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from core.common import context as core_context
from core.common.actor import Actor
from core.common.errors import StorageError, StorageUnavailableError
from core.common.result import ErrorCode, OperationError, OperationResult
from core.services.jobs import permissions as job_permissions
from core.services.tasks import permissions as task_permissions
from server import auth
from server.errors import STATUS_BY_CODE, rich_status, set_failure

log = logging.getLogger(__name__)

# A call's answer must reach its caller before the caller's deadline: this much before.
DEADLINE_MARGIN_S = 0.5

CORRELATION_HEADER = "x-correlation-id"
TRACEPARENT_HEADER = "traceparent"

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
    JOBS + "GetJobStats": (job_permissions, job_permissions.READ),
    JOBS + "ClaimJobs": (job_permissions, job_permissions.CLAIM),
    JOBS + "HeartbeatJob": (job_permissions, job_permissions.HEARTBEAT),
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


class CallGuard:
    """Admits every jobtask call and guards it: correlation id, authentication, the early
    permission check, and the catch-all that turns what escapes a servicer into a status.

    Handlers are built once per method, not per call. A unary call is admitted and served
    in one hop to a worker thread (its status set on the context, so nothing awaits on the
    event loop for it); a stream is admitted on the loop. Health and reflection are not
    guarded: they are registered without it.
    """

    def __init__(
        self,
        authenticator: auth.Authenticator,
        executor: Executor,
        *,
        max_wait_s: float = 30.0,
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._executor = executor
        # Hears each answered call: (method, status code name, seconds).
        self._observe = observe or (lambda method, code, seconds: None)
        # Longest a unary call waits for its worker (a database that froze: nothing on this
        # side times out). The caller then hears UNAVAILABLE before its own deadline.
        self._max_wait_s = max_wait_s

    def unary_handlers(
        self, servicer: object, service: ServiceDescriptor
    ) -> grpc.GenericRpcHandler[Any, Any]:
        """The handlers of every RPC of ``service``: each runs ``servicer``'s synchronous method
        on the worker threads, behind the guard (a coroutine method, such as a long poll,
        runs on the event loop and hands its own blocking work to the threads). A request
        that cannot even be decoded (nested past the decoder's depth, truncated) is answered
        INVALID_ARGUMENT."""
        handlers = {}
        for rpc in service.methods:
            method = f"/{service.full_name}/{rpc.name}"
            request = message_factory.GetMessageClass(rpc.input_type)
            empty = message_factory.GetMessageClass(rpc.output_type)
            inner = getattr(servicer, rpc.name)
            wrap = self._unary_async if inspect.iscoroutinefunction(inner) else self._unary
            handlers[rpc.name] = grpc.unary_unary_rpc_method_handler(
                wrap(method, inner, empty),
                request_deserializer=_decoding(request),
                response_serializer=empty.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(service.full_name, handlers)

    def stream_handlers(self, servicer: object, service: ServiceDescriptor) -> object:
        """An object with a coroutine per RPC of ``service`` (each writes its responses with
        ``context.write``), behind the guard."""
        adapter = type(f"Guarded{type(servicer).__name__}", (), {})()
        for rpc in service.methods:
            method = f"/{service.full_name}/{rpc.name}"
            setattr(adapter, rpc.name, self._stream(method, getattr(servicer, rpc.name)))
        return adapter

    def admit(self, method: str, metadata: Any) -> str:
        """Set the correlation id and the actor of this call; raise Refused otherwise."""
        headers = metadata or ()
        # The caller's correlation id, else its W3C trace context: the events a call causes
        # carry it, so a subscriber can follow a change back to the call and its trace.
        supplied = next((value for key, value in headers if key == CORRELATION_HEADER), None)
        if supplied is None:
            supplied = next((value for key, value in headers if key == TRACEPARENT_HEADER), None)
        correlation = supplied if isinstance(supplied, str) and 0 < len(supplied) <= 200 else uuid.uuid4().hex
        core_context.correlation_id.set(correlation)
        try:
            actor = self._authenticator.authenticate(headers)
        except auth.Unauthenticated as exc:
            raise Refused(OperationResult.unauthenticated(str(exc)).reason) from None
        refusal = early_refusal(method, actor)
        if refusal is not None:
            raise Refused(refusal)
        auth.current_actor.set(actor)
        return correlation

    @staticmethod
    def failure(method: str, correlation: str | None, error: Exception) -> OperationError:
        """The status for what escaped a servicer: storage trouble is retryable (UNAVAILABLE,
        ABORTED); anything else is logged and INTERNAL with the correlation id only."""
        if isinstance(error, Refused):
            return error.error
        if isinstance(error, StorageError):
            log.warning("%s: storage failed: %s", method, error)
            if isinstance(error, StorageUnavailableError):
                failed = OperationResult.unavailable("the database is unavailable; retry shortly")
            else:
                failed = OperationResult.failure(ErrorCode.ABORTED, "a concurrent change interfered; retry")
            return failed.reason
        log.error("unexpected error in %s (correlation id %s)", method, correlation, exc_info=error)
        internal = OperationResult.internal(
            f"internal error (correlation id {correlation})", correlation_id=correlation
        )
        return internal.reason

    def _admit_call(self, method: str, request: Any, context: Any) -> None:
        """Admit a unary call (its deadline, correlation id and actor set for this call);
        Refused for an unknown caller, an early refusal or an undecodable request."""
        core_context.set_time_remaining(context.time_remaining())
        self.admit(method, context.invocation_metadata())
        if isinstance(request, Undecodable):
            raise Refused(request.error)

    def _unary(self, method: str, inner: Callable[..., Any], empty: type[Any]) -> Callable[..., Any]:
        observe = self._observe

        def run(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            try:
                self._admit_call(method, request, context)
                return inner(request, context)
            except Exception as error:
                set_failure(context, self.failure(method, core_context.correlation_id.get(), error))
                return empty()
            finally:
                observe(method, _code_of(context), time.perf_counter() - started)

        executor = self._executor

        max_wait_s = self._max_wait_s

        async def guarded(request: Any, context: Any) -> Any:
            # A copy of this call's context (its trace span, when tracing): the correlation id
            # and actor set in the worker thread belong to this call alone.
            call = contextvars.copy_context().run
            remaining = context.time_remaining()
            wait = max_wait_s if remaining is None else min(max_wait_s, remaining - DEADLINE_MARGIN_S)
            work = asyncio.get_running_loop().run_in_executor(executor, call, run, request, context)
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    return await work
            except TimeoutError:
                log.warning("%s: no answer from the database within %.1fs", method, wait)
                failure = OperationResult.unavailable("the database did not answer in time; retry")
                set_failure(context, failure.reason)
                observe(method, "UNAVAILABLE", wait)
                return empty()

        return guarded

    def _unary_async(self, method: str, inner: Callable[..., Any], empty: type[Any]) -> Callable[..., Any]:
        observe = self._observe

        async def guarded(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            try:
                self._admit_call(method, request, context)
                return await inner(request, context)
            except Exception as error:
                set_failure(context, self.failure(method, core_context.correlation_id.get(), error))
                return empty()
            finally:
                observe(method, _code_of(context), time.perf_counter() - started)

        return guarded

    def _stream(self, method: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        observe = self._observe

        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            correlation = None
            started = time.perf_counter()
            code = "OK"
            try:
                correlation = self.admit(method, context.invocation_metadata())
                await inner(request, context)
            except grpc.aio.AbortError:
                code = _code_of(context, default="ABORTED")
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception as error:
                if context.done():
                    # The call already ended (the client left, or a status was sent): nothing
                    # more can be said to anyone.
                    log.debug("%s ended before its failure could be sent: %s", method, error)
                    return
                failure = self.failure(method, correlation, error)
                code = STATUS_BY_CODE[failure.code].name
                await _abort(context, failure)
            finally:
                observe(method, code, time.perf_counter() - started)

        return guarded


def _code_of(context: Any, default: str = "OK") -> str:
    """The status code name a call's context was given (OK when none was set)."""
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), default)
    return default


class Undecodable:
    """What a request that could not be decoded becomes, so the guard can answer it."""

    def __init__(self, reason: str) -> None:
        self.error = OperationResult.invalid_argument("request", f"cannot be decoded: {reason}").reason


def _decoding(message: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    def decode(data: bytes) -> Message | Undecodable:
        try:
            return message.FromString(data)
        except DecodeError as exc:
            depth = "MaxDepth" in str(exc)
            return Undecodable("nested too deeply" if depth else "not a valid message")
        except RecursionError:
            return Undecodable("nested too deeply")

    return decode


class Refused(Exception):
    """A call refused before its servicer ran."""

    def __init__(self, error: OperationError) -> None:
        super().__init__(error.message)
        self.error = error
