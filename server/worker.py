"""Worker: runs jobs of a jobtask server in this process, one handler per kind.

It claims jobs of the kinds it has handlers for (a long poll: no busy loop), runs each
handler on a thread of its own, heartbeats while it runs (so the lease holds, progress
shows, and a requested cancellation reaches the handler), then completes the job with
what the handler returned or fails it with what it raised, naming its run each time.
``stop()`` (or SIGTERM under ``run_until_signalled``) stops claiming, lets the running
jobs finish, and returns. See docs/python.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import duration_pb2, json_format
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc

from core.services.jobs.types import PROGRESS_MESSAGE_MAX

log = logging.getLogger(__name__)

# How many characters of an error (a traceback, a command's stderr) a failure carries.
ERROR_TAIL = 4_000
# Transient failures (UNAVAILABLE, ABORTED, DEADLINE_EXCEEDED) of a finishing call are
# retried this many times, a second apart: the lease usually outlasts them.
FINISH_ATTEMPTS = 10
# How long stop() lets a claim in flight come back before cancelling it.
STOP_GRACE_S = 1.0
RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)


class JobFailed(Exception):
    """Raised by a handler: fail the job with this message (retried per its policy)."""


class PermanentFailure(JobFailed):
    """Raised by a handler: fail the job without a retry, whatever its retry policy."""


class LeaseLost(Exception):
    """The run no longer holds its job (the lease lapsed and the job was taken back)."""


@dataclasses.dataclass
class JobContext:
    """What a handler gets: the job, its payload, and ways to talk back while it runs."""

    job: jobs_pb2.Job
    run_id: str
    payload: dict[str, Any]
    _cancelled: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)
    _lost: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)
    _progress: tuple[float | None, str | None] | None = dataclasses.field(default=None, repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)
    _on_cancel: list[Callable[[], None]] = dataclasses.field(default_factory=list, repr=False)

    @property
    def id(self) -> str:
        """The job id."""
        return self.job.id

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested (or the lease was lost): stop soon."""
        return self._cancelled.is_set()

    def wait_cancelled(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early (True) when cancelled."""
        return self._cancelled.wait(timeout)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the heartbeat thread) when cancellation is requested."""
        self._on_cancel.append(callback)
        if self.cancelled:
            callback()

    def progress(self, percent: float | None = None, message: str | None = None) -> None:
        """Report progress (``percent`` from 0 to 100); it travels with the next heartbeat.
        ValueError for a value the server would refuse (the heartbeat carries the lease)."""
        if percent is not None:
            percent = float(percent)
            if not 0.0 <= percent <= 100.0:
                raise ValueError(f"progress must be a percentage between 0 and 100, not {percent}")
        if message is not None:
            message = _clean(str(message))[:PROGRESS_MESSAGE_MAX]
        with self._lock:
            self._progress = (percent, message)

    def _take_progress(self) -> tuple[float | None, str | None] | None:
        with self._lock:
            taken, self._progress = self._progress, None
        return taken

    def _cancel(self, lost: bool = False) -> None:
        if lost:
            self._lost.set()
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        for callback in self._on_cancel:
            try:
                callback()
            except Exception:
                log.exception("cancel callback of job %s failed", self.id)


# What a handler returns: result data (a JSON object), or (data, message), or None.
Handler = Callable[[JobContext], Any]


class Worker:
    """Claims and runs jobs through a JobService stub.

    ``metadata`` is the identity sent with each call (an ``authorization`` bearer token, or
    the x-actor-* headers of a server in header mode); the actor needs the ``worker`` role
    (or ``operator``).
    """

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        metadata: Sequence[tuple[str, str]],
        worker_id: str | None = None,
        concurrency: int = 1,
        lease: timedelta = timedelta(seconds=30),
        poll_wait: timedelta = timedelta(seconds=20),
        labels: Mapping[str, str] | None = None,
        call_timeout: float = 10.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._stub = jobs_pb2_grpc.JobServiceStub(channel)  # type: ignore[no-untyped-call]
        self._metadata = list(metadata)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self._concurrency = concurrency
        self._lease = lease
        self._poll_wait = poll_wait
        self._labels = dict(labels or {})
        self._call_timeout = call_timeout
        self._handlers: dict[str, Handler] = {}
        self._stopping = threading.Event()
        self._slots = threading.Semaphore(concurrency)
        self._running: set[threading.Thread] = set()
        self._pending_claim: grpc.Future[Any] | None = None
        # Reentrant: stop() runs in the SIGTERM handler, on a thread that may hold it.
        self._lock = threading.RLock()
        self.completed = 0
        self.failed = 0

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        """Register the decorated function as the handler of jobs of ``kind``."""

        def register(function: Handler) -> Handler:
            self._handlers[kind] = function
            return function

        return register

    def stop(self) -> None:
        """Stop claiming; ``run`` returns once the running jobs have finished.

        A claim in flight gets STOP_GRACE_S to come back first: one that already took jobs
        answers within milliseconds, and its jobs are then run, not lost; one still waiting
        for work is cancelled."""
        self._stopping.set()

        def cancel_pending() -> None:
            with self._lock:
                pending = self._pending_claim
            if pending is not None:
                pending.cancel()

        timer = threading.Timer(STOP_GRACE_S, cancel_pending)
        timer.daemon = True
        timer.start()

    def run_until_signalled(self) -> None:
        """``run`` until SIGTERM or SIGINT, which stop it gracefully (main thread only)."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, lambda *_: self.stop())
        try:
            self.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def run(self) -> None:
        """Claim and run jobs until ``stop``; then wait for the running ones."""
        if not self._handlers:
            raise ValueError("no handler registered: use @worker.handler(kind)")
        log.info(
            "worker %s claims %s (concurrency %d)", self.worker_id, sorted(self._handlers), self._concurrency
        )
        failures = 0
        while not self._stopping.is_set():
            free = self._free_slots()
            if free == 0:
                continue
            try:
                claims = self._claim(free)
                failures = 0
            except grpc.RpcError as error:
                self._release(free)
                if self._stopping.is_set():
                    break
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning("claiming failed (%s); again in %.1fs", _describe(error), delay)
                self._stopping.wait(delay)
                continue
            self._release(free - len(claims))
            for claimed in claims:
                self._start(claimed)
        for thread in list(self._running):
            thread.join()

    # -- claiming ----------------------------------------------------------------------

    def _free_slots(self) -> int:
        """Take every free slot (waiting for at least one, or for stop)."""
        if not self._slots.acquire(timeout=0.2):
            return 0
        taken = 1
        while taken < self._concurrency and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _claim(self, count: int) -> list[jobs_pb2.ClaimedJob]:
        request = jobs_pb2.ClaimJobsRequest(
            kinds=sorted(self._handlers),
            labels=self._labels,
            max_jobs=count,
            wait=_duration(self._poll_wait),
            lease_duration=_duration(self._lease),
            worker_id=self.worker_id,
        )
        future = self._stub.ClaimJobs.future(
            request, metadata=self._metadata, timeout=self._poll_wait.total_seconds() + self._call_timeout
        )
        with self._lock:
            self._pending_claim = future
        try:
            if self._stopping.is_set():
                future.cancel()
            return list(future.result().jobs)
        except grpc.FutureCancelledError:
            return []
        finally:
            with self._lock:
                self._pending_claim = None

    # -- running one job ------------------------------------------------------------------

    def _start(self, claimed: jobs_pb2.ClaimedJob) -> None:
        payload = json_format.MessageToDict(claimed.job.payload)
        context = JobContext(job=claimed.job, run_id=claimed.run.id, payload=payload)
        thread = threading.Thread(target=self._run_job, args=(context,), name=f"job-{claimed.job.id}")
        with self._lock:
            self._running.add(thread)
        thread.start()

    def _run_job(self, context: JobContext) -> None:
        try:
            # The lease is kept until the outcome is reported, retries included.
            with self._heartbeating(context):
                outcome = self._outcome(context)
                if context._lost.is_set():
                    log.warning("job %s: the lease was lost; its outcome is dropped", context.id)
                    return
                self._finish(context, outcome)
        finally:
            with self._lock:
                self._running.discard(threading.current_thread())
            self._slots.release()

    def _outcome(self, context: JobContext) -> tuple[str, Any]:
        handler = self._handlers[context.job.kind]
        try:
            return "ok", _result_of(handler(context))
        except PermanentFailure as error:
            return "permanent", str(error) or type(error).__name__
        except JobFailed as error:
            return "error", str(error) or type(error).__name__
        except Exception:
            return "error", traceback.format_exc()[-ERROR_TAIL:]

    def _finish(self, context: JobContext, outcome: tuple[str, Any]) -> None:
        how, value = outcome
        if context.cancelled:
            how, value = "error", "stopped: cancellation was requested"
        if how == "ok":
            data, message = value
            try:
                result = jobs_pb2.JobResult(message=message)
                result.data.update(data)
            except (ValueError, TypeError) as error:
                how, value = "error", f"the handler's result cannot be sent: {error}"
            else:
                completed = jobs_pb2.CompleteJobRequest(id=context.id, run_id=context.run_id, result=result)
                refusal = self._report(context, self._stub.CompleteJob, completed)
                if refusal is None:
                    self._count(completed=True)
                    return
                if refusal.code() is not grpc.StatusCode.INVALID_ARGUMENT:
                    return
                how, value = "error", f"the server refused the handler's result: {refusal.details()}"
        failed = jobs_pb2.FailJobRequest(
            id=context.id,
            run_id=context.run_id,
            error=_clean(str(value))[-ERROR_TAIL:] or "failed",
            permanent=how == "permanent",
        )
        if self._report(context, self._stub.FailJob, failed) is None:
            self._count(completed=False)

    def _report(self, context: JobContext, call: Any, request: Any) -> grpc.RpcError | None:
        """Send a finishing call, retrying transient failures; the refusal, if any."""
        for attempt in range(FINISH_ATTEMPTS):
            try:
                call(request, metadata=self._metadata, timeout=self._call_timeout)
                return None
            except grpc.RpcError as error:
                code = error.code()
                if code in RETRYABLE and attempt + 1 < FINISH_ATTEMPTS:
                    time.sleep(1.0)
                    continue
                if code is grpc.StatusCode.FAILED_PRECONDITION and attempt > 0:
                    # An earlier attempt may have landed before its answer was lost.
                    log.warning(
                        "job %s: no longer held by run %s: %s", context.id, context.run_id, _describe(error)
                    )
                else:
                    log.error("job %s: reporting its end failed: %s", context.id, _describe(error))
                return error
        return None  # pragma: no cover - the loop always returns

    def _count(self, *, completed: bool) -> None:
        with self._lock:
            if completed:
                self.completed += 1
            else:
                self.failed += 1

    @contextlib.contextmanager
    def _heartbeating(self, context: JobContext) -> Iterator[None]:
        done = threading.Event()
        every = max(0.2, self._lease.total_seconds() / 3)

        def beat() -> None:
            while not done.wait(every):
                try:
                    self._heartbeat(context)
                except LeaseLost:
                    log.warning("job %s: run %s lost its lease", context.id, context.run_id)
                    context._cancel(lost=True)
                    return
                except grpc.RpcError as error:
                    log.warning("job %s: heartbeat failed: %s", context.id, _describe(error))
                except Exception:
                    # Whatever goes wrong, the beat goes on: a stopped heartbeat loses the job.
                    log.exception("job %s: heartbeat failed", context.id)

        thread = threading.Thread(target=beat, name=f"heartbeat-{context.id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _heartbeat(self, context: JobContext) -> None:
        request = jobs_pb2.HeartbeatJobRequest(id=context.id, run_id=context.run_id)
        progress = context._take_progress()
        if progress is not None:
            percent, message = progress
            if percent is not None:
                request.progress = percent
            if message is not None:
                request.progress_message = message
        try:
            answer = self._stub.HeartbeatJob(request, metadata=self._metadata, timeout=self._call_timeout)
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                raise LeaseLost(context.run_id) from None
            raise
        if answer.cancel_requested:
            context._cancel()


def _result_of(value: Any) -> tuple[dict[str, Any], str]:
    """(data, message) of what a handler returned: None, a mapping (the data), a (data,
    message) pair, or anything else (the message). TypeError for a pair whose data is not
    a mapping."""
    if value is None:
        return {}, ""
    if isinstance(value, tuple) and len(value) == 2:
        data, message = value
        if data is not None and not isinstance(data, Mapping):
            raise TypeError(f"a handler's (data, message) needs a mapping as data, not {type(data).__name__}")
        return dict(data or {}), _clean(str(message))[-ERROR_TAIL:]
    if isinstance(value, Mapping):
        return dict(value), ""
    return {}, _clean(str(value))[-ERROR_TAIL:]


def _clean(text: str) -> str:
    """``text`` without the NUL characters no request field may carry."""
    return text.replace("\x00", "")


def _duration(value: timedelta) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(value)
    return duration


def _describe(error: grpc.RpcError) -> str:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    return f"{getattr(code, 'name', code)}: {details}"
