"""Jobs and tasks react to each other's events through the durable event log."""

from __future__ import annotations

import threading
import uuid

import pytest

from core.common.actor import SYSTEM_ACTOR_ID, Actor
from core.common.clock import FakeClock
from core.common.result import ErrorCode
from core.messaging.events import Event
from core.messaging.reactions import Reaction, Reactor
from core.services.jobs.types import Job, JobCreate
from core.services.tasks.types import Task, TaskCreate, TaskStatus
from core.services.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tests.conftest import SQL_BACKENDS
from tests.integration.conftest import Services


def job_with_tasks(services: Services, owner: Actor, count: int) -> tuple[Job, list[Task]]:
    job = services.jobs.create_job(owner, JobCreate(name="release", kind="k")).value
    tasks = [
        services.tasks.create_task(owner, TaskCreate(title=f"t{n}", job_id=job.id)).value
        for n in range(count)
    ]
    return job, tasks


def counters(services: Services, actor: Actor, job: Job) -> tuple[int, int]:
    current = services.jobs.get_job(actor, job.id).value
    return current.task_total, current.task_done


class TestCancellingAJob:
    def test_cancels_exactly_its_open_tasks_as_the_system(
        self, services: Services, ann: Actor, delivered: list[Event]
    ) -> None:
        job, tasks = job_with_tasks(services, ann, 4)
        services.tasks.complete_task(ann, tasks[3].id)
        services.reactor.run_until_idle()
        delivered.clear()

        services.jobs.cancel_job(ann, job.id, "release dropped")
        services.reactor.run_until_idle()

        statuses = [services.tasks.get_task(ann, t.id).value.status for t in tasks]
        assert statuses == [TaskStatus.CANCELLED] * 3 + [TaskStatus.COMPLETED]
        cancelled = [e for e in delivered if e.type == "task.cancelled"]
        assert sorted(e.resource_id for e in cancelled) == sorted(t.id for t in tasks[:3])
        assert {e.actor_id for e in cancelled} == {SYSTEM_ACTOR_ID}
        assert {e.payload.reason for e in cancelled} == {f"job {job.id} cancelled"}
        assert services.tasks.get_task(ann, tasks[0].id).value.cancel_reason == f"job {job.id} cancelled"

    def test_subtasks_of_the_job_are_cancelled_too(self, services: Services, ann: Actor) -> None:
        job, (root,) = job_with_tasks(services, ann, 1)
        child = services.tasks.create_subtask(ann, root.id, TaskCreate(title="c")).value
        services.jobs.cancel_job(ann, job.id)
        services.reactor.run_until_idle()
        assert services.tasks.get_task(ann, child.id).value.status is TaskStatus.CANCELLED


class TestCounters:
    def test_counters_follow_create_complete_reopen_delete_link_and_unlink(
        self, services: Services, ann: Actor, delivered: list[Event]
    ) -> None:
        job, tasks = job_with_tasks(services, ann, 3)
        services.reactor.run_until_idle()
        assert counters(services, ann, job) == (3, 0)

        services.tasks.complete_task(ann, tasks[0].id)
        services.reactor.run_until_idle()
        assert counters(services, ann, job) == (3, 1)

        services.tasks.reopen_task(ann, tasks[0].id)
        services.reactor.run_until_idle()
        assert counters(services, ann, job) == (3, 0)

        services.tasks.delete_task(ann, tasks[1].id)
        services.reactor.run_until_idle()
        assert counters(services, ann, job) == (2, 0)

        loose = services.tasks.create_task(ann, TaskCreate(title="loose")).value
        services.tasks.create_subtask(ann, loose.id, TaskCreate(title="below"))
        services.tasks.complete_task(ann, tasks[2].id)
        services.tasks.link_task(ann, job.id, loose.id)
        services.reactor.run_until_idle()
        assert counters(services, ann, job) == (4, 1)

        services.tasks.unlink_task(ann, job.id, loose.id)
        services.reactor.run_until_idle()
        assert counters(services, ann, job) == (2, 1)

        updates = [e for e in delivered if e.type == "job.updated"]
        assert updates
        assert {e.actor_id for e in updates} == {SYSTEM_ACTOR_ID}
        assert {e.payload.changed_fields for e in updates} == {("task_done", "task_total")}

    def test_deleting_a_job_unlinks_its_tasks(
        self, services: Services, ann: Actor, delivered: list[Event]
    ) -> None:
        job, tasks = job_with_tasks(services, ann, 2)
        delivered.clear()
        services.jobs.delete_job(ann, job.id)
        services.reactor.run_until_idle()
        assert [services.tasks.get_task(ann, t.id).value.job_id for t in tasks] == [None, None]
        updated = [e for e in delivered if e.type == "task.updated"]
        assert sorted(e.resource_id for e in updated) == sorted(t.id for t in tasks)
        assert {e.payload.changed_fields for e in updated} == {("job_id",)}


class TestDurability:
    def test_a_reaction_interrupted_by_a_restart_happens_exactly_once_after_it(
        self, uow: UnitOfWorkFactory, clock: FakeClock, ann: Actor
    ) -> None:
        before = Services(uow, clock)
        job, _ = job_with_tasks(before, ann, 3)
        before.reactor.run_until_idle()
        before.jobs.cancel_job(ann, job.id)
        # The process stops here: the cancellation committed, its reaction did not run.

        after = Services(uow, clock)
        after.reactor.run_until_idle()
        Services(uow, clock).reactor.run_until_idle()  # and once more, after another restart

        with uow(read_only=True) as work:
            log = work.log.read_after(0, 10_000)
        assert [e.type for e in log].count("task.cancelled") == 3
        assert {t.status for t in work_tasks(uow, job)} == {TaskStatus.CANCELLED}

    def test_a_failing_reaction_is_logged_and_skipped(
        self, uow: UnitOfWorkFactory, services: Services, ann: Actor, caplog: pytest.LogCaptureFixture
    ) -> None:
        seen: list[int] = []

        def fragile(work: UnitOfWork, event: Event) -> None:
            seen.append(event.sequence)
            if event.sequence == 2:
                raise RuntimeError("bug in a handler")
            work.positions.get("unused")

        reactor = Reactor(uow=uow, reactions=[Reaction.of("fragile", ["job.*"], fragile)])
        for n in range(3):
            services.jobs.create_job(ann, JobCreate(name=f"j{n}", kind="k"))
        assert reactor.run_until_idle() == 3
        assert seen == [1, 2, 1, 3]  # the batch is redone up to the bad event, which is stepped over
        assert "skipping that event" in caplog.text
        with uow(read_only=True) as work:
            assert work.positions.get("fragile") == 3


def work_tasks(uow: UnitOfWorkFactory, job: Job) -> list[Task]:
    with uow(read_only=True) as work:
        return list(work.tasks.by_job(job.tenant, job.id))


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
def test_two_replicas_reacting_at_once_apply_each_reaction_once(
    uow: UnitOfWorkFactory, clock: FakeClock, ann: Actor
) -> None:
    writer = Services(uow, clock)
    jobs = [job_with_tasks(writer, ann, 3)[0] for _ in range(5)]
    writer.reactor.run_until_idle()
    for job in jobs:
        writer.jobs.cancel_job(ann, job.id)
    replicas = [Services(uow, clock).reactor for _ in range(2)]

    def drain(reactor: Reactor) -> None:
        for _ in range(50):
            reactor.run_until_idle()

    threads = [threading.Thread(target=drain, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with uow(read_only=True) as work:
        log = work.log.read_after(0, 10_000)
    assert [e.type for e in log].count("task.cancelled") == 15


class TestLinkPermissions:
    def test_the_actor_must_read_the_job_and_change_the_task(
        self, services: Services, ann: Actor, ops: Actor, make_actor: object
    ) -> None:
        bob = Actor(id="bob", tenant="acme", roles=frozenset({"member"}))
        viewer = Actor(id="vic", tenant="acme", roles=frozenset({"viewer"}))
        stranger = Actor(id="ann", tenant="globex", roles=frozenset({"admin"}))
        job = services.jobs.create_job(ann, JobCreate(name="j", kind="k")).value
        bobs_job = services.jobs.create_job(bob, JobCreate(name="b", kind="k")).value
        task = services.tasks.create_task(ann, TaskCreate(title="t")).value
        held = services.tasks.create_task(bob, TaskCreate(title="h", assignee="ann")).value

        assert (
            services.tasks.link_task(ann, bobs_job.id, task.id).code is ErrorCode.NOT_FOUND
        )  # cannot read job
        assert (
            services.tasks.link_task(bob, bobs_job.id, task.id).code is ErrorCode.NOT_FOUND
        )  # cannot read task
        assert services.tasks.link_task(viewer, job.id, task.id).code is ErrorCode.PERMISSION_DENIED
        assert services.tasks.link_task(stranger, job.id, task.id).code is ErrorCode.NOT_FOUND
        assert services.tasks.link_task(ann, job.id, uuid.uuid4()).code is ErrorCode.NOT_FOUND
        assert services.tasks.link_task(ann, job.id, task.id, expected_version=5).code is ErrorCode.ABORTED
        assert services.tasks.link_task(ann, job.id, held.id).value.job_id == job.id  # assignee may update
        linked = services.tasks.link_task(ann, job.id, task.id).value
        assert services.tasks.link_task(ann, job.id, task.id).value == linked  # already there: nothing to do
        assert services.tasks.link_task(ops, bobs_job.id, task.id).code is ErrorCode.PERMISSION_DENIED
        admin = Actor(id="root", tenant="acme", roles=frozenset({"admin"}))
        elsewhere = services.tasks.link_task(admin, bobs_job.id, task.id)
        assert elsewhere.code is ErrorCode.FAILED_PRECONDITION
        assert elsewhere.error.details == {"job_id": str(job.id)}
        assert services.tasks.unlink_task(ann, bobs_job.id, task.id).code is ErrorCode.NOT_FOUND
        # The job, named first, is refused first, whatever is wrong with the task.
        for refused in (
            services.tasks.link_task(bob, uuid.uuid4(), task.id),  # task unreadable too
            services.tasks.link_task(viewer, uuid.uuid4(), task.id),  # task not updatable too
            services.tasks.link_task(ann, bobs_job.id, task.id, expected_version=99),  # stale etag too
        ):
            assert refused.code is ErrorCode.NOT_FOUND and refused.error.details["resource"] == "job"

    def test_subtasks_follow_their_parent_and_listing(
        self, services: Services, ann: Actor, ops: Actor
    ) -> None:
        job = services.jobs.create_job(ann, JobCreate(name="j", kind="k")).value
        root = services.tasks.create_task(ann, TaskCreate(title="r")).value
        child = services.tasks.create_subtask(ann, root.id, TaskCreate(title="c")).value
        assert services.tasks.link_task(ann, job.id, child.id).code is ErrorCode.FAILED_PRECONDITION
        services.tasks.link_task(ann, job.id, root.id)
        page = services.tasks.list_job_tasks(ann, job.id, page_size=1).value
        rest = services.tasks.list_job_tasks(ann, job.id, page_size=1, page_token=page.next_page_token).value
        assert [t.id for t in [*page.items, *rest.items]] == [root.id, child.id]
        assert services.tasks.list_job_tasks(ann, job.id, page_token="x").code is ErrorCode.INVALID_ARGUMENT
        other_job = services.jobs.create_job(ann, JobCreate(name="o", kind="k")).value
        assert services.tasks.unlink_task(ann, other_job.id, root.id).code is ErrorCode.FAILED_PRECONDITION
        unlinked = services.tasks.unlink_task(ann, job.id, root.id).value
        assert unlinked.job_id is None
        assert services.tasks.get_task(ann, child.id).value.job_id is None
        bob = Actor(id="bob", tenant="acme", roles=frozenset({"member"}))
        assert services.tasks.list_job_tasks(bob, job.id).code is ErrorCode.NOT_FOUND
        nobody = Actor(id="ann", tenant="acme", roles=frozenset({"wizard"}))
        assert services.tasks.list_job_tasks(nobody, job.id).code is ErrorCode.NOT_FOUND
