"""RunnableJobs: which commits wake which waiting claims."""

from __future__ import annotations

import asyncio
import uuid

from core.common.actor import Actor
from core.common.clock import SystemClock
from core.messaging.events import Event, new_event
from core.services.jobs.runnable import RunnableJobs, notice
from core.services.jobs.types import JobEvent, JobEventType, JobStatus, JobStatusEvent


def job_event(tenant: str, status: JobStatus) -> Event:
    payload = JobEvent(job_id=uuid.uuid4(), name="n", kind="k", owner="ann", status=status, version=1)
    actor = Actor(id="ann", tenant=tenant, roles=frozenset({"member"}))
    return new_event(
        JobEventType.CREATED, payload, actor=actor, clock=SystemClock(), resource_id=payload.job_id
    )


def moved(tenant: str, new_status: JobStatus) -> Event:
    payload = JobStatusEvent(
        job_id=uuid.uuid4(), owner="ann", old_status=JobStatus.SCHEDULED, new_status=new_status, version=2
    )
    actor = Actor(id="system", tenant=tenant, roles=frozenset({"system"}))
    return new_event(
        JobEventType.STATUS_CHANGED, payload, actor=actor, clock=SystemClock(), resource_id=payload.job_id
    )


def woken_by(*deliveries: object) -> tuple[bool, bool]:
    """(acme's waiter woken, globex's waiter woken) after the deliveries."""

    async def scenario() -> tuple[bool, bool]:
        runnable = RunnableJobs()
        with runnable.watch("acme") as acme, runnable.watch("globex") as globex:
            for delivery in deliveries:
                if isinstance(delivery, Event):
                    runnable.on_event(delivery)
                else:
                    runnable.on_notice(delivery)  # type: ignore[arg-type]
            return await acme.wait(0.05), await globex.wait(0.05)

    return asyncio.run(scenario())


def test_a_pending_job_of_a_tenant_wakes_only_that_tenants_claims() -> None:
    assert woken_by(job_event("acme", JobStatus.PENDING)) == (True, False)
    assert woken_by(moved("globex", JobStatus.PENDING)) == (False, True)


def test_changes_that_make_nothing_runnable_wake_nobody() -> None:
    assert woken_by(job_event("acme", JobStatus.SCHEDULED), moved("acme", JobStatus.RUNNING)) == (
        False,
        False,
    )


def test_a_commits_notice_names_the_tenants_where_jobs_became_runnable() -> None:
    events = [
        job_event("acme", JobStatus.PENDING),
        moved("globex", JobStatus.RUNNING),
        moved("initech", JobStatus.PENDING),
        job_event("acme", JobStatus.SCHEDULED),
    ]
    assert notice(events) == '["acme","initech"]'
    assert notice([moved("acme", JobStatus.SUCCEEDED)]) == ""


def test_notices_from_any_process_wake_by_tenant_or_everyone_when_unknown() -> None:
    assert woken_by(notice([job_event("acme", JobStatus.PENDING)])) == (True, False)
    assert woken_by('["globex"]') == (False, True)
    assert woken_by("") == (False, False)  # a commit that made nothing runnable
    assert woken_by(None) == (True, True)  # after a reconnect: anything may have happened
    assert woken_by("not json") == (True, True)


def test_closing_wakes_every_waiter_and_says_so() -> None:
    async def scenario() -> bool:
        runnable = RunnableJobs()
        with runnable.watch("acme") as waiter:
            asyncio.get_running_loop().call_later(0.01, runnable.close)
            woken = await waiter.wait(5)
        return woken and runnable.closed

    assert asyncio.run(scenario())


def test_a_finished_watch_is_forgotten() -> None:
    async def scenario() -> None:
        runnable = RunnableJobs()
        with runnable.watch("acme"):
            pass
        runnable.wake(["acme"])  # nobody left to wake: no error
        assert runnable._waiting == {}

    asyncio.run(scenario())
