"""RunnableJobs: wakes the long polls of ClaimJobs when a job may have become runnable.

A waiting claim registers for its tenant before it looks for work, so nothing that
becomes runnable between its look and its wait is missed. It is woken by the events that
make a job PENDING (job.created, job.status_changed to PENDING) committed in this process
(the bus), and by the notices of commits in any replica that made jobs runnable (``notice``
names their tenants; PostgreSQL's NOTIFY carries it); it also looks again every
``poll_s`` in case a notice was lost. A wake-up is only a reason to look: the claim
itself decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterable, Iterator, Sequence

from core.messaging.events import Event
from core.services.jobs.types import JobEvent, JobEventType, JobStatus, JobStatusEvent


def made_runnable(event: Event) -> bool:
    """True when ``event`` says a job became PENDING (created so, or moved there)."""
    payload = event.payload
    if isinstance(payload, JobEvent) and event.type == JobEventType.CREATED:
        return payload.status is JobStatus.PENDING
    if isinstance(payload, JobStatusEvent) and event.type == JobEventType.STATUS_CHANGED:
        return payload.new_status is JobStatus.PENDING
    return False


def notice(events: Sequence[Event]) -> str:
    """A commit's notice to other processes: the tenants in which it made jobs runnable, as a
    JSON list; empty when it made none."""
    tenants = sorted({event.tenant for event in events if made_runnable(event)})
    return json.dumps(tenants, separators=(",", ":")) if tenants else ""


def tenants_of(text: str | None) -> frozenset[str] | None:
    """The tenants a notice names; None when it cannot say (anything may be runnable)."""
    if text is None:
        return None
    if not text:
        return frozenset()
    try:
        tenants = json.loads(text)
    except ValueError:
        return None
    return frozenset(str(t) for t in tenants) if isinstance(tenants, list) else None


class Waiter:
    """One waiting claim: an asyncio event that any thread may set."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self._loop = asyncio.get_running_loop()
        self._flag = asyncio.Event()

    def wake(self) -> None:
        """Set the flag from any thread."""
        self._loop.call_soon_threadsafe(self._flag.set)

    async def wait(self, timeout: float) -> bool:
        """Wait until woken or ``timeout`` seconds pass; True when woken. Clears the flag."""
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                await self._flag.wait()
        except TimeoutError:
            return False
        finally:
            self._flag.clear()
        return True


class RunnableJobs:
    """The waiting claims of one process, by tenant."""

    def __init__(self, *, poll_s: float = 1.0) -> None:
        self.poll_s = poll_s
        self.closed = False
        self._waiting: dict[str, set[Waiter]] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def watch(self, tenant: str) -> Iterator[Waiter]:
        """Register a waiter for ``tenant`` (on the event loop) for the block's duration."""
        waiter = Waiter(tenant)
        with self._lock:
            self._waiting.setdefault(tenant, set()).add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                waiters = self._waiting.get(tenant)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiting[tenant]

    def on_event(self, event: Event) -> None:
        """A committed event of this process (a bus handler): wake the claims it may serve."""
        if made_runnable(event):
            self.wake([event.tenant])

    def on_notice(self, text: str | None) -> None:
        """A commit in some process, with its notice (None: unknown, wake everyone)."""
        tenants = tenants_of(text)
        if tenants is None or tenants:
            self.wake(tenants)

    def wake(self, tenants: Iterable[str] | None) -> None:
        """Wake the claims waiting in ``tenants`` (every one when None); from any thread."""
        with self._lock:
            if tenants is None:
                chosen = [w for waiters in self._waiting.values() for w in waiters]
            else:
                chosen = [w for tenant in tenants for w in self._waiting.get(tenant, ())]
        for waiter in chosen:
            waiter.wake()

    def close(self) -> None:
        """The server is stopping: every waiting claim answers now, with what it has."""
        self.closed = True
        self.wake(None)
