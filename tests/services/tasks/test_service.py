"""TaskService behaviour, use case by use case, on every storage backend."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from core.common.actor import Actor
from core.common.clock import FakeClock
from core.common.result import ErrorCode, OperationResult
from core.messaging.events import Event
from core.services.catalog import can_see
from core.services.jobs.service import JobService
from core.services.jobs.types import JobCreate
from core.services.tasks import types
from core.services.tasks.service import TaskService
from core.services.tasks.types import TaskCall, TaskCreate, TaskFilters, TaskPriority, TaskStatus, TaskUpdate
from core.services.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tests.conftest import ActorFactory
from tests.services.jobs.test_service import blind_to_request_ids
from tests.services.tasks.conftest import TaskMaker


def types_of(events: list[Event]) -> list[str]:
    return [event.type for event in events]


def assert_failed(result: OperationResult[object], code: ErrorCode) -> None:
    assert not result.ok, f"expected {code}, got success"
    assert result.code is code, result.error


def fields_of(result: OperationResult[object]) -> set[str]:
    assert result.error is not None
    return {v.field for v in result.error.field_violations}


class TestCreateTask:
    def test_creates_an_open_task_owned_by_the_actor(
        self, service: TaskService, member: Actor, delivered: list[Event], clock: FakeClock
    ) -> None:
        due = clock.now() + timedelta(days=2)
        task = service.create_task(
            member,
            TaskCreate(title="Review", priority=TaskPriority.HIGH, due_at=due, labels={"area": "docs"}),
        ).value

        assert (task.status, task.owner, task.priority, task.due_at, task.version) == (
            TaskStatus.OPEN,
            "ann",
            TaskPriority.HIGH,
            due,
            1,
        )
        assert service.get_task(member, task.id).value == task
        assert types_of(delivered) == ["task.created"]
        payload = delivered[0].payload
        assert isinstance(payload, types.TaskEvent)
        assert (payload.task_id, payload.title, payload.parent_id) == (task.id, "Review", None)

    def test_creating_with_an_assignee_also_emits_assigned(
        self, service: TaskService, member: Actor, delivered: list[Event]
    ) -> None:
        service.create_task(member, TaskCreate(title="t", assignee="carl"))
        assert types_of(delivered) == ["task.created", "task.assigned"]
        payload = delivered[1].payload
        assert isinstance(payload, types.TaskAssignEvent)
        assert (payload.old_assignee, payload.new_assignee) == (None, "carl")

    def test_a_task_of_a_job_carries_it_on_its_events(
        self, service: TaskService, jobs: JobService, member: Actor, delivered: list[Event]
    ) -> None:
        job = jobs.create_job(member, JobCreate(name="j", kind="k")).value
        task = service.create_task(member, TaskCreate(title="t", job_id=job.id)).value
        assert task.job_id == job.id
        assert delivered[-1].job_id == job.id

    @pytest.mark.parametrize(
        ("spec", "field"),
        [
            ({"title": ""}, "title"),
            ({"title": "x" * 10_240}, "title"),
            ({"description": "d" * 10_001}, "description"),
            ({"priority": "SUPER"}, "priority"),
            ({"assignee": ""}, "assignee"),
            ({"labels": {"-bad": "v"}}, "labels['-bad']"),
            ({"request_id": ""}, "request_id"),
            ({"title": "a\x00"}, "title"),
            ({"assignee": "carl\x00"}, "assignee"),
        ],
    )
    def test_invalid_fields_are_named_and_nothing_is_stored(
        self, service: TaskService, member: Actor, delivered: list[Event], spec: dict[str, object], field: str
    ) -> None:
        result = service.create_task(member, TaskCreate(**{"title": "ok", **spec}))
        assert_failed(result, ErrorCode.INVALID_ARGUMENT)
        assert field in fields_of(result)
        assert delivered == []
        assert service.list_tasks(member).value.items == []

    def test_a_naive_due_date_is_invalid(self, service: TaskService, member: Actor, clock: FakeClock) -> None:
        result = service.create_task(member, TaskCreate(title="t", due_at=clock.now().replace(tzinfo=None)))
        assert fields_of(result) == {"due_at"}

    def test_a_job_of_another_tenant_or_unreadable_is_not_found(
        self, service: TaskService, jobs: JobService, stranger: Actor, member: Actor, operator: Actor
    ) -> None:
        foreign = jobs.create_job(stranger, JobCreate(name="j", kind="k")).value
        assert_failed(
            service.create_task(member, TaskCreate(title="t", job_id=foreign.id)), ErrorCode.NOT_FOUND
        )
        unreadable = jobs.create_job(operator, JobCreate(name="theirs", kind="k")).value
        assert_failed(
            service.create_task(member, TaskCreate(title="t", job_id=unreadable.id)), ErrorCode.NOT_FOUND
        )

    def test_a_viewer_may_not_create(self, service: TaskService, viewer: Actor) -> None:
        assert_failed(service.create_task(viewer, TaskCreate(title="t")), ErrorCode.PERMISSION_DENIED)

    def test_a_retry_with_the_same_request_id_returns_the_first_task(
        self, service: TaskService, member: Actor, delivered: list[Event]
    ) -> None:
        first = service.create_task(member, TaskCreate(title="t", request_id="abc")).value
        assert service.create_task(member, TaskCreate(title="t", request_id="abc")).value == first
        assert types_of(delivered) == ["task.created"]


class TestSubtasks:
    def test_a_subtask_inherits_tenant_and_job(
        self, service: TaskService, jobs: JobService, member: Actor, make_task: TaskMaker
    ) -> None:
        job = jobs.create_job(member, JobCreate(name="j", kind="k")).value
        parent = make_task(job_id=job.id)
        child = make_task(parent=parent)
        assert (child.parent_id, child.job_id, child.tenant) == (parent.id, job.id, "acme")

    def test_a_subtask_cannot_name_another_job(
        self, service: TaskService, jobs: JobService, member: Actor, make_task: TaskMaker
    ) -> None:
        job = jobs.create_job(member, JobCreate(name="j", kind="k")).value
        parent = make_task()
        result = service.create_subtask(member, parent.id, TaskCreate(title="t", job_id=job.id))
        assert fields_of(result) == {"job_id"}

    def test_a_parent_in_another_tenant_or_unknown_is_not_found(
        self,
        service: TaskService,
        make_task: TaskMaker,
        stranger: Actor,
        member: Actor,
        delivered: list[Event],
    ) -> None:
        parent = make_task()
        delivered.clear()
        assert_failed(service.create_subtask(stranger, parent.id, TaskCreate(title="t")), ErrorCode.NOT_FOUND)
        assert_failed(
            service.create_subtask(member, uuid.uuid4(), TaskCreate(title="t")), ErrorCode.NOT_FOUND
        )
        assert delivered == []

    def test_a_job_that_is_unknown_or_unreadable_is_not_found(
        self, service: TaskService, member: Actor, delivered: list[Event]
    ) -> None:
        assert_failed(
            service.create_task(member, TaskCreate(title="t", job_id=uuid.uuid4())), ErrorCode.NOT_FOUND
        )
        assert delivered == []

    def test_subtasks_are_the_direct_children_as_a_list_or_by_page(
        self, service: TaskService, make_task: TaskMaker, member: Actor, stranger: Actor
    ) -> None:
        root = make_task()
        a, b = make_task(parent=root), make_task(parent=root)
        make_task(parent=a)
        assert [t.id for t in service.get_subtasks(member, root.id).value] == [a.id, b.id]
        page = service.list_subtasks(member, root.id, page_size=1).value
        rest = service.list_subtasks(member, root.id, page_size=1, page_token=page.next_page_token).value
        assert [t.id for t in [*page.items, *rest.items]] == [a.id, b.id]
        assert_failed(service.get_subtasks(stranger, root.id), ErrorCode.NOT_FOUND)
        assert_failed(service.list_subtasks(stranger, root.id), ErrorCode.NOT_FOUND)

    def test_the_seed_signatures_take_their_keyword_arguments(
        self, service: TaskService, make_task: TaskMaker, member: Actor
    ) -> None:
        task = make_task()
        updated = service.update_task(actor=member, task_id=task.id, updates=TaskUpdate(title="renamed"))
        assert updated.value.title == "renamed"
        assert service.get_subtasks(actor=member, parent_id=task.id).value == []


class TestGetAndList:
    def test_visibility(
        self,
        service: TaskService,
        make_task: TaskMaker,
        member: Actor,
        assignee: Actor,
        other_member: Actor,
        viewer: Actor,
        operator: Actor,
        stranger: Actor,
    ) -> None:
        task = make_task(assignee="carl")
        for reader in (member, assignee, viewer, operator):
            assert service.get_task(reader, task.id).value == task
        for outsider in (other_member, stranger):
            assert_failed(service.get_task(outsider, task.id), ErrorCode.NOT_FOUND)
        assert_failed(service.get_task(member, uuid.uuid4()), ErrorCode.NOT_FOUND)

    def test_members_list_what_they_own_or_hold(
        self, service: TaskService, make_task: TaskMaker, member: Actor, assignee: Actor, other_member: Actor
    ) -> None:
        held = make_task(by=other_member, assignee="carl")
        owned = make_task(by=assignee)
        make_task(by=other_member)
        assert [t.id for t in service.list_tasks(assignee).value.items] == [held.id, owned.id]

    def test_filters(
        self,
        service: TaskService,
        jobs: JobService,
        make_task: TaskMaker,
        member: Actor,
        admin: Actor,
        clock: FakeClock,
    ) -> None:
        job = jobs.create_job(member, JobCreate(name="j", kind="k")).value
        soon, later = clock.now() + timedelta(days=1), clock.now() + timedelta(days=9)
        a = make_task(priority=TaskPriority.URGENT, labels={"area": "ui"}, due_at=soon, assignee="carl")
        b = make_task(job_id=job.id, due_at=later)
        c = make_task(parent=a, by=admin)
        service.complete_task(admin, c.id)

        def ids(filters: TaskFilters) -> list[uuid.UUID]:
            return [t.id for t in service.list_tasks(admin, filters).value.items]

        assert ids(TaskFilters()) == [a.id, b.id, c.id]
        assert ids(TaskFilters(statuses=frozenset({TaskStatus.COMPLETED}))) == [c.id]
        assert ids(TaskFilters(assignee="carl")) == [a.id]
        assert ids(TaskFilters(owner="root")) == [c.id]
        assert ids(TaskFilters(priorities=frozenset({TaskPriority.URGENT}))) == [a.id]
        assert ids(TaskFilters(job_id=job.id)) == [b.id]
        assert ids(TaskFilters(parent_id=a.id)) == [c.id]
        assert ids(TaskFilters(labels={"area": "ui"})) == [a.id]
        assert ids(TaskFilters(due_after=clock.now() + timedelta(days=2))) == [b.id]
        assert ids(TaskFilters(due_before=clock.now() + timedelta(days=2))) == [a.id]

    def test_bad_listing_requests(self, service: TaskService, member: Actor, clock: FakeClock) -> None:
        later = clock.now() + timedelta(days=1)
        assert fields_of(
            service.list_tasks(member, TaskFilters(due_after=later, due_before=clock.now()))
        ) == {"filter.due_before"}
        assert fields_of(service.list_tasks(member, page_token="nope")) == {"page_token"}
        assert fields_of(service.list_tasks(member, TaskFilters(labels={"a b": "c"}))) == {
            "filter.labels['a b']"
        }

    def test_an_actor_without_roles_sees_nothing(
        self, service: TaskService, make_task: TaskMaker, make_actor: object
    ) -> None:
        make_task()
        nobody = Actor(id="ann", tenant="acme", roles=frozenset())
        assert service.list_tasks(nobody).value.items == []


class TestUpdateTask:
    def test_moves_open_to_in_progress_and_back(
        self, service: TaskService, make_task: TaskMaker, assignee: Actor, delivered: list[Event]
    ) -> None:
        task = make_task(assignee="carl")
        delivered.clear()

        started = service.update_task(assignee, task.id, TaskUpdate(status=TaskStatus.IN_PROGRESS)).value
        assert started.status is TaskStatus.IN_PROGRESS
        assert types_of(delivered) == ["task.updated", "task.status_changed"]
        payload = delivered[1].payload
        assert isinstance(payload, types.TaskStatusEvent)
        assert (payload.old_status, payload.new_status) == (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)

        back = service.update_task(assignee, task.id, TaskUpdate(status=TaskStatus.OPEN)).value
        assert back.status is TaskStatus.OPEN

    def test_changes_fields_and_names_them(
        self, service: TaskService, make_task: TaskMaker, member: Actor, delivered: list[Event]
    ) -> None:
        task = make_task()
        delivered.clear()
        updated = service.update_task(
            member, task.id, TaskUpdate(title="new", priority=TaskPriority.LOW, description=task.description)
        ).value
        assert (updated.title, updated.priority, updated.version) == ("new", TaskPriority.LOW, 2)
        assert isinstance(delivered[0].payload, types.TaskEvent)
        assert delivered[0].payload.changed_fields == ("priority", "title")
        delivered.clear()
        assert service.update_task(member, task.id, TaskUpdate(title="new")).value == updated
        assert delivered == []

    def test_status_cannot_jump_to_completed(
        self, service: TaskService, make_task: TaskMaker, member: Actor, delivered: list[Event]
    ) -> None:
        task = make_task()
        delivered.clear()
        result = service.update_task(member, task.id, TaskUpdate(status=TaskStatus.COMPLETED))
        assert_failed(result, ErrorCode.FAILED_PRECONDITION)
        assert result.error is not None
        assert result.error.details == {"current_state": "OPEN", "attempted_state": "COMPLETED"}
        assert delivered == []

    def test_invalid_fields_and_versions(
        self, service: TaskService, make_task: TaskMaker, member: Actor
    ) -> None:
        task = make_task()
        assert fields_of(service.update_task(member, task.id, TaskUpdate(title="", priority="HUGE"))) == {
            "title",
            "priority",
        }
        assert fields_of(service.update_task(member, task.id, TaskUpdate(status="DONE"))) == {"status"}
        assert_failed(
            service.update_task(member, task.id, TaskUpdate(title="x"), expected_version=9), ErrorCode.ABORTED
        )

    def test_permissions(
        self,
        service: TaskService,
        make_task: TaskMaker,
        viewer: Actor,
        other_member: Actor,
        stranger: Actor,
    ) -> None:
        task = make_task()
        change = TaskUpdate(title="x")
        assert_failed(service.update_task(viewer, task.id, change), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.update_task(other_member, task.id, change), ErrorCode.NOT_FOUND)
        assert_failed(service.update_task(stranger, task.id, change), ErrorCode.NOT_FOUND)


class TestAssignTask:
    def test_assigns_and_reassigns_with_old_and_new(
        self, service: TaskService, make_task: TaskMaker, member: Actor, delivered: list[Event]
    ) -> None:
        task = make_task()
        delivered.clear()
        service.assign_task(member, task.id, "carl")
        again = service.assign_task(member, task.id, "dora").value
        assert again.assignee == "dora"
        payloads = [e.payload for e in delivered]
        assert types_of(delivered) == ["task.assigned", "task.assigned"]
        assert [(p.old_assignee, p.new_assignee) for p in payloads] == [(None, "carl"), ("carl", "dora")]
        delivered.clear()
        assert service.assign_task(member, task.id, "dora").value == again
        assert delivered == []
        assert service.assign_task(member, task.id, None).value.assignee is None

    def test_operators_assign_any_task_members_only_their_own(
        self, service: TaskService, make_task: TaskMaker, operator: Actor, assignee: Actor, viewer: Actor
    ) -> None:
        task = make_task(assignee="carl")
        assert_failed(service.assign_task(assignee, task.id, "carl2"), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.assign_task(viewer, task.id, "x"), ErrorCode.PERMISSION_DENIED)
        assert service.assign_task(operator, task.id, "x").ok

    def test_a_closed_task_is_reopened_before_assigning(
        self, service: TaskService, make_task: TaskMaker, member: Actor
    ) -> None:
        task = make_task()
        service.complete_task(member, task.id)
        assert_failed(service.assign_task(member, task.id, "carl"), ErrorCode.FAILED_PRECONDITION)
        assert fields_of(service.assign_task(member, task.id, "")) == {"assignee"}


class TestCompleteTask:
    def test_the_refusal_names_only_the_open_subtasks_the_caller_may_read(
        self, service: TaskService, make_task: TaskMaker, member: Actor, assignee: Actor
    ) -> None:
        parent = make_task(assignee=assignee.id)
        owners = service.create_subtask(member, parent.id, TaskCreate(title="the owner's")).value
        assignees = service.create_subtask(assignee, parent.id, TaskCreate(title="the assignee's")).value
        assert service.get_task(assignee, owners.id).code is ErrorCode.NOT_FOUND

        refused = service.complete_task(assignee, parent.id)

        assert_failed(refused, ErrorCode.FAILED_PRECONDITION)
        assert refused.error is not None
        assert refused.error.details["open_subtasks"] == [str(assignees.id)]
        assert refused.error.details["open_subtask_count"] == 2
        assert str(owners.id) not in refused.error.message

    def test_an_owner_sees_every_subtask_of_its_task_whoever_added_it(
        self,
        service: TaskService,
        make_task: TaskMaker,
        member: Actor,
        assignee: Actor,
        make_actor: ActorFactory,
        delivered: list[Event],
    ) -> None:
        helper = make_actor("member", id="hal")
        parent = make_task(assignee=assignee.id)
        child = service.create_subtask(assignee, parent.id, TaskCreate(title="split", assignee="hal")).value
        grandchild = service.create_subtask(helper, child.id, TaskCreate(title="deeper")).value
        assert (child.owners_above, grandchild.owners_above) == (("ann",), ("ann", assignee.id))

        assert service.get_task(member, grandchild.id).ok
        assert service.get_task(assignee, grandchild.id).ok
        listed = service.list_tasks(member, TaskFilters(parent_id=child.id)).value.items
        assert [t.id for t in listed] == [grandchild.id]
        refused = service.complete_task(member, parent.id)
        assert refused.error is not None
        assert refused.error.details["open_subtasks"] == sorted([str(child.id), str(grandchild.id)])
        visible = [e for e in delivered if can_see(member, e) and e.resource_id == grandchild.id]
        assert [e.type for e in visible] == ["task.created"]
        # Reading is all it grants: the owner above does not act on the subtask.
        assert_failed(
            service.update_task(member, grandchild.id, TaskUpdate(title="x")), ErrorCode.PERMISSION_DENIED
        )

    def test_the_assignee_completes_and_reopens(
        self,
        service: TaskService,
        make_task: TaskMaker,
        assignee: Actor,
        delivered: list[Event],
        clock: FakeClock,
    ) -> None:
        task = make_task(assignee="carl")
        delivered.clear()

        done = service.complete_task(assignee, task.id).value
        assert (done.status, done.completed_at) == (TaskStatus.COMPLETED, clock.now())
        assert types_of(delivered) == ["task.completed", "task.status_changed"]

        delivered.clear()
        reopened = service.reopen_task(assignee, task.id).value
        assert (reopened.status, reopened.completed_at) == (TaskStatus.OPEN, None)
        assert types_of(delivered) == ["task.status_changed"]

    def test_a_parent_waits_for_its_open_subtasks(
        self, service: TaskService, make_task: TaskMaker, member: Actor, delivered: list[Event]
    ) -> None:
        root = make_task()
        child = make_task(parent=root)
        grandchild = make_task(parent=child)
        delivered.clear()

        result = service.complete_task(member, root.id)

        assert_failed(result, ErrorCode.FAILED_PRECONDITION)
        assert result.error is not None
        assert result.error.details["open_subtasks"] == [str(child.id), str(grandchild.id)]
        assert delivered == []
        service.complete_task(member, grandchild.id)
        service.complete_task(member, child.id)
        assert service.complete_task(member, root.id).ok

    def test_permissions(
        self, service: TaskService, make_task: TaskMaker, viewer: Actor, other_member: Actor, operator: Actor
    ) -> None:
        task = make_task()
        assert_failed(service.complete_task(viewer, task.id), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.complete_task(operator, task.id), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.complete_task(other_member, task.id), ErrorCode.NOT_FOUND)


class TestCancelTask:
    def test_cascades_to_open_subtasks_on_a_three_level_tree(
        self, service: TaskService, make_task: TaskMaker, member: Actor, delivered: list[Event]
    ) -> None:
        root = make_task()
        child = make_task(parent=root)
        done_child = make_task(parent=root)
        grandchild = make_task(parent=child)
        service.complete_task(member, done_child.id)
        delivered.clear()

        cancelled = service.cancel_task(member, root.id, "scope cut").value

        assert (cancelled.status, cancelled.cancel_reason) == (TaskStatus.CANCELLED, "scope cut")
        statuses = {t.id: t.status for t in service.list_tasks(member).value.items}
        assert statuses == {
            root.id: TaskStatus.CANCELLED,
            child.id: TaskStatus.CANCELLED,
            done_child.id: TaskStatus.COMPLETED,
            grandchild.id: TaskStatus.CANCELLED,
        }
        assert [(e.type, e.resource_id) for e in delivered] == [
            ("task.cancelled", root.id),
            ("task.status_changed", root.id),
            ("task.cancelled", child.id),
            ("task.status_changed", child.id),
            ("task.cancelled", grandchild.id),
            ("task.status_changed", grandchild.id),
        ]
        assert [e.sequence for e in delivered] == sorted(e.sequence for e in delivered)

    def test_only_the_owner_cancels(
        self, service: TaskService, make_task: TaskMaker, assignee: Actor, viewer: Actor
    ) -> None:
        task = make_task(assignee="carl")
        assert_failed(service.cancel_task(assignee, task.id), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.cancel_task(viewer, task.id), ErrorCode.PERMISSION_DENIED)
        assert fields_of(service.cancel_task(assignee, task.id, "r" * 1001)) == {"reason"}


# Every (status, call) the status machine refuses, with the status the call would lead to.
TARGET = {
    TaskCall.COMPLETE: TaskStatus.COMPLETED,
    TaskCall.CANCEL: TaskStatus.CANCELLED,
    TaskCall.REOPEN: TaskStatus.OPEN,
}
ILLEGAL = [(s, c) for s in TaskStatus for c in TARGET if (s, c) not in types.TRANSITIONS]
ILLEGAL_UPDATES = [
    s for s in (TaskStatus.COMPLETED, TaskStatus.CANCELLED) if (s, TaskCall.UPDATE) not in types.TRANSITIONS
]


class TestIllegalTransitions:
    @staticmethod
    def task_in(service: TaskService, make_task: TaskMaker, admin: Actor, status: TaskStatus) -> uuid.UUID:
        task = make_task()
        if status is TaskStatus.IN_PROGRESS:
            service.update_task(admin, task.id, TaskUpdate(status=status))
        elif status is TaskStatus.COMPLETED:
            service.complete_task(admin, task.id)
        elif status is TaskStatus.CANCELLED:
            service.cancel_task(admin, task.id)
        return task.id

    @pytest.mark.parametrize(("status", "call"), ILLEGAL, ids=[f"{s}-{c}" for s, c in ILLEGAL])
    def test_lifecycle_calls(
        self,
        service: TaskService,
        make_task: TaskMaker,
        admin: Actor,
        delivered: list[Event],
        status: TaskStatus,
        call: TaskCall,
    ) -> None:
        task_id = self.task_in(service, make_task, admin, status)
        before = service.get_task(admin, task_id).value
        delivered.clear()
        result = {
            TaskCall.COMPLETE: service.complete_task,
            TaskCall.CANCEL: service.cancel_task,
            TaskCall.REOPEN: service.reopen_task,
        }[call](admin, task_id)
        assert_failed(result, ErrorCode.FAILED_PRECONDITION)
        assert result.error is not None
        assert result.error.details == {"current_state": status, "attempted_state": TARGET[call]}
        assert service.get_task(admin, task_id).value == before
        assert delivered == []

    @pytest.mark.parametrize("status", ILLEGAL_UPDATES)
    def test_status_updates_of_closed_tasks(
        self, service: TaskService, make_task: TaskMaker, admin: Actor, status: TaskStatus
    ) -> None:
        task_id = self.task_in(service, make_task, admin, status)
        result = service.update_task(admin, task_id, TaskUpdate(status=TaskStatus.IN_PROGRESS))
        assert_failed(result, ErrorCode.FAILED_PRECONDITION)


class TestDeleteTask:
    def test_deletes_the_subtree_with_one_event_each(
        self, service: TaskService, make_task: TaskMaker, member: Actor, admin: Actor, delivered: list[Event]
    ) -> None:
        root = make_task()
        child = make_task(parent=root)
        grandchild = make_task(parent=child, by=admin)
        keep = make_task()
        delivered.clear()

        assert service.delete_task(member, root.id).value.id == root.id

        assert [t.id for t in service.list_tasks(admin).value.items] == [keep.id]
        assert [(e.type, e.resource_id) for e in delivered] == [
            ("task.deleted", grandchild.id),
            ("task.deleted", child.id),
            ("task.deleted", root.id),
        ]

    def test_permissions_and_versions(
        self,
        service: TaskService,
        make_task: TaskMaker,
        member: Actor,
        assignee: Actor,
        viewer: Actor,
        stranger: Actor,
        delivered: list[Event],
    ) -> None:
        task = make_task(assignee="carl")
        delivered.clear()
        assert_failed(service.delete_task(assignee, task.id), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.delete_task(viewer, task.id), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.delete_task(stranger, task.id), ErrorCode.NOT_FOUND)
        assert_failed(service.delete_task(member, task.id, expected_version=3), ErrorCode.ABORTED)
        assert delivered == []
        assert service.delete_task(member, task.id, expected_version=1).ok


class TestConcurrentIdempotentCreate:
    def test_losing_the_insert_race_answers_with_the_winners_task(
        self,
        service: TaskService,
        jobs: JobService,
        uow: UnitOfWorkFactory,
        clock: FakeClock,
        member: Actor,
        delivered: list[Event],
    ) -> None:
        first = service.create_task(member, TaskCreate(title="t", request_id="dup"))
        racer = TaskService(uow=blind_to_request_ids(uow), jobs=jobs, clock=clock)
        assert racer.create_task(member, TaskCreate(title="t", request_id="dup")).value == first.value
        assert types_of(delivered) == ["task.created"]


class _Jobs:
    """What TaskService is told of jobs: a fixed answer, and who asked about which job."""

    def __init__(self, readable: bool) -> None:
        self.readable = readable
        self.asked: list[tuple[str, uuid.UUID]] = []

    def can_read_job(self, work: UnitOfWork, actor: Actor, job_id: uuid.UUID) -> bool:
        self.asked.append((actor.id, job_id))
        return self.readable


class TestWhatTasksAskOfJobs:
    """TaskService knows of jobs only what it is given: whether the actor may read one."""

    def test_an_unreadable_job_is_not_found_to_every_call_that_names_one(
        self, uow: UnitOfWorkFactory, clock: FakeClock, member: Actor, delivered: list[Event]
    ) -> None:
        jobs = _Jobs(readable=False)
        service = TaskService(uow=uow, jobs=jobs, clock=clock)
        task = service.create_task(member, TaskCreate(title="t")).value
        job_id = uuid.uuid4()
        delivered.clear()
        for refused in (
            service.create_task(member, TaskCreate(title="in a job", job_id=job_id)),
            service.link_task(member, job_id, task.id),
            service.unlink_task(member, job_id, task.id),
            # Refused for the job first, though the task does not exist either.
            service.link_task(member, job_id, uuid.uuid4()),
            service.list_job_tasks(member, job_id),
        ):
            assert_failed(refused, ErrorCode.NOT_FOUND)
            assert refused.error.details["resource"] == "job"
        assert jobs.asked == [(member.id, job_id)] * 5
        assert delivered == []

    def test_a_readable_job_lists_the_tasks_linked_to_it(
        self, uow: UnitOfWorkFactory, clock: FakeClock, member: Actor, jobs: JobService
    ) -> None:
        job = jobs.create_job(member, JobCreate(name="j", kind="k")).value
        told = _Jobs(readable=True)
        service = TaskService(uow=uow, jobs=told, clock=clock)
        task = service.create_task(member, TaskCreate(title="t", job_id=job.id)).value
        assert [t.id for t in service.list_job_tasks(member, job.id).value.items] == [task.id]
        assert told.asked == [(member.id, job.id)] * 2
