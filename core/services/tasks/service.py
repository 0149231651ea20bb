"""TaskService: tasks and subtasks, assignment, their status machine and their events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Final, Never, Protocol, TypeVar

from core.common import pagination, validation
from core.common.actor import Actor, system_actor
from core.common.clock import Clock, SystemClock
from core.common.errors import guarded_change
from core.common.ids import new_id
from core.common.pagination import Page
from core.common.result import FieldViolation, OperationResult
from core.messaging.events import Event, Payload, new_event
from core.messaging.reactions import Reaction
from core.services import changes
from core.services.tasks import permissions, types
from core.services.tasks.types import (
    Task,
    TaskCall,
    TaskCreate,
    TaskEventType,
    TaskFilters,
    TaskPriority,
    TaskStatus,
    TaskUpdate,
)
from core.services.unit_of_work import UnitOfWork, UnitOfWorkFactory

# What a step decides: the task after it, the tasks it writes (each with the version it was
# read at: a cascade writes several) and its events.
Decision = OperationResult[changes.Change[Task]]

C = TypeVar("C")

TASKS: Final[changes.Kind[Task]] = changes.Kind(
    "task", lambda uow: uow.tasks, permissions.can_read, permissions.can
)


class Jobs(Protocol):
    """What tasks need to know of jobs, and no more: whether the actor may see one. A task
    goes only into a job its actor can read; any other job is NOT_FOUND to it, as it is
    from JobService. JobService answers it; the tasks package imports nothing of jobs."""

    def can_read_job(self, work: UnitOfWork, actor: Actor, job_id: uuid.UUID) -> bool:
        """True when ``job_id`` is a job of the actor's tenant it may read, in ``work``."""
        ...


class TaskService:
    """Create, read, assign and move tasks on behalf of an actor; every method checks permissions."""

    def __init__(self, *, uow: UnitOfWorkFactory, jobs: Jobs, clock: Clock | None = None) -> None:
        self._uow = uow
        self._jobs = jobs
        self._clock = clock or SystemClock()

    # -- create and read ------------------------------------------------------------------

    def create_task(self, actor: Actor, task: TaskCreate) -> OperationResult[Task]:
        """Create a top-level task owned by the actor, optionally in a job.

        A retry with the same ``request_id`` by the same actor returns the first task.
        """
        return self._create(actor, task, parent_id=None)

    def create_subtask(self, actor: Actor, parent_id: uuid.UUID, task: TaskCreate) -> OperationResult[Task]:
        """Create a task under ``parent_id``; it lives in the parent's tenant and job."""
        return self._create(actor, task, parent_id=parent_id)

    def _create(
        self, actor: Actor, spec: TaskCreate, *, parent_id: uuid.UUID | None
    ) -> OperationResult[Task]:
        violations = types.field_violations(
            title=spec.title,
            description=spec.description,
            priority=spec.priority,
            assignee=spec.assignee,
            due_at=spec.due_at,
            labels=spec.labels,
            request_id=spec.request_id,
        )
        if violations:
            return OperationResult.invalid(*violations)
        if not permissions.may_ever(actor, permissions.CREATE):
            return OperationResult.denied("create", "task", "in tenant " + actor.tenant, actor.id)
        return changes.create_once(
            self._uow, TASKS, actor, spec.request_id, lambda: self._insert(actor, spec, parent_id)
        )

    def _insert(self, actor: Actor, spec: TaskCreate, parent_id: uuid.UUID | None) -> OperationResult[Task]:
        now = self._clock.now()
        with self._uow() as uow:
            if spec.request_id is not None:
                existing = uow.tasks.get_by_request_id(actor.tenant, actor.id, spec.request_id)
                if existing is not None:
                    return OperationResult.success(existing)
            job_id = spec.job_id
            owners_above: tuple[str, ...] = ()
            if parent_id is not None:
                parent = uow.tasks.get(actor.tenant, parent_id)
                if parent is None or not permissions.can_read(actor, parent):
                    return OperationResult.not_found("task", parent_id)
                if job_id is not None and job_id != parent.job_id:
                    return OperationResult.invalid_argument("job_id", "a subtask belongs to its parent's job")
                job_id = parent.job_id
                owners_above = tuple(dict.fromkeys([*parent.owners_above, parent.owner]))
            elif job_id is not None and not self._jobs.can_read_job(uow, actor, job_id):
                return OperationResult.not_found("job", job_id)
            task = Task(
                id=new_id(),
                tenant=actor.tenant,
                title=spec.title,
                description=spec.description,
                priority=TaskPriority(spec.priority),
                owner=actor.id,
                assignee=spec.assignee,
                parent_id=parent_id,
                job_id=job_id,
                due_at=spec.due_at,
                labels=dict(spec.labels),
                created_at=now,
                updated_at=now,
                request_id=spec.request_id,
                owners_above=owners_above,
            )
            uow.tasks.add(task)
            uow.events.append(self._event(TaskEventType.CREATED, types.task_event(task), actor, task))
            if task.assignee is not None:
                uow.events.append(
                    self._event(TaskEventType.ASSIGNED, _assign_payload(None, task), actor, task)
                )
            uow.commit()
        return OperationResult.success(task)

    @changes.reading("task")
    def get_task(self, actor: Actor, task_id: uuid.UUID) -> OperationResult[Task]:
        """The task, if the actor may read it."""
        with self._uow(read_only=True) as uow:
            task = uow.tasks.get(actor.tenant, task_id)
        if task is None or not permissions.can_read(actor, task):
            return OperationResult.not_found("task", task_id)
        return OperationResult.success(task)

    @changes.reading("task")
    def list_tasks(
        self,
        actor: Actor,
        filters: TaskFilters | None = None,
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> OperationResult[Page[Task]]:
        """The tasks the actor may read that match ``filters``, one keyset page at a time."""
        filters = filters or TaskFilters()
        violations = list(validation.labels("filter.labels", filters.labels))
        violations += validation.optional_text("filter.owner", filters.owner, max_length=types.ACTOR_ID_MAX)
        violations += validation.optional_text(
            "filter.assignee", filters.assignee, max_length=types.ACTOR_ID_MAX
        )
        if filters.due_after and filters.due_before and filters.due_after > filters.due_before:
            violations.append(FieldViolation("filter.due_before", "must not be before due_after"))
        if violations:
            return OperationResult.invalid(*violations)
        if not permissions.may_ever(actor, permissions.READ):
            return OperationResult.success(Page(items=[]))
        reader = actor.id if permissions.reads_only_own(actor) else None
        fingerprint = pagination.fingerprint(actor.tenant, reader, *filters.fingerprint_parts())
        try:
            request = pagination.page_request(page_size, page_token, fingerprint)
        except pagination.InvalidPageRequest as exc:
            return OperationResult.invalid_argument(exc.field, exc.description)
        with self._uow(read_only=True) as uow:
            rows = uow.tasks.list(
                actor.tenant, filters, reader=reader, after=request.after, limit=request.size + 1
            )
        return OperationResult.success(pagination.make_page(rows, request, fingerprint))

    @changes.reading("task")
    def get_subtasks(self, actor: Actor, parent_id: uuid.UUID) -> OperationResult[list[Task]]:
        """Every direct subtask of ``parent_id`` the actor may read, in creation order."""
        found: list[Task] = []
        token = ""
        while True:
            page = self.list_subtasks(actor, parent_id, page_size=pagination.MAX_PAGE_SIZE, page_token=token)
            if not page.ok:
                return page.as_failure()
            found += page.value.items
            token = page.value.next_page_token
            if not token:
                return OperationResult.success(found)

    @changes.reading("task")
    def list_subtasks(
        self, actor: Actor, parent_id: uuid.UUID, *, page_size: int = 0, page_token: str = ""
    ) -> OperationResult[Page[Task]]:
        """The direct subtasks of ``parent_id`` the actor may read, one keyset page at a time."""
        parent = self.get_task(actor, parent_id)
        if not parent.ok:
            return parent.as_failure()
        return self.list_tasks(
            actor, TaskFilters(parent_id=parent_id), page_size=page_size, page_token=page_token
        )

    # -- changes --------------------------------------------------------------------------

    def update_task(
        self, actor: Actor, task_id: uuid.UUID, updates: TaskUpdate, *, expected_version: int | None = None
    ) -> OperationResult[Task]:
        """Change the fields ``updates`` sets; a status change moves OPEN <-> IN_PROGRESS."""
        asked = updates.changes()
        violations = types.field_violations(
            **{
                k: v
                for k, v in asked.items()
                if k in {"title", "description", "priority", "labels", "due_at"}
            }
        )
        if "status" in asked and asked["status"] not in set(TaskStatus):
            violations.append(FieldViolation("status", f"must be one of {', '.join(TaskStatus)}"))
        if violations:
            return OperationResult.invalid(*violations)

        def decide(task: Task, _: None, now: datetime) -> Decision:
            changed = {name: value for name, value in asked.items() if getattr(task, name) != value}
            if not changed:
                return OperationResult.success(changes.Change.nothing(task))
            if "status" in changed:
                moved = task.transition(TaskCall.UPDATE, TaskStatus(changed.pop("status")), at=now, **changed)
                if not moved.ok:
                    return moved.as_failure()
                after = moved.value
            else:
                after = task.changed(at=now, **changed)
            fields = tuple(sorted({*changed, *(["status"] if after.status is not task.status else [])}))
            emitted = [self._event(TaskEventType.UPDATED, types.task_event(after, fields), actor, after)]
            if after.status is not task.status:
                emitted.append(
                    self._event(TaskEventType.STATUS_CHANGED, types.status_event(task, after), actor, after)
                )
            return OperationResult.success(changes.Change.of(task, after, emitted))

        return self._change(
            actor, task_id, permissions.UPDATE, expected_version, decide, changes.nothing_more
        )

    def assign_task(
        self, actor: Actor, task_id: uuid.UUID, assignee: str | None, *, expected_version: int | None = None
    ) -> OperationResult[Task]:
        """Give the task to ``assignee`` (None unassigns); emits task.assigned with both."""
        violations = types.field_violations(assignee=assignee)
        if violations:
            return OperationResult.invalid(*violations)

        def decide(task: Task, _: None, now: datetime) -> Decision:
            if task.assignee == assignee:
                return OperationResult.success(changes.Change.nothing(task))
            if not task.is_open:
                return OperationResult.failed_precondition(
                    f"task {task.id} is {task.status}: reopen it before assigning it",
                    current_state=task.status,
                )
            after = task.changed(at=now, assignee=assignee)
            payload = _assign_payload(task.assignee, after)
            return OperationResult.success(
                changes.Change.of(task, after, [self._event(TaskEventType.ASSIGNED, payload, actor, after)])
            )

        return self._change(
            actor, task_id, permissions.ASSIGN, expected_version, decide, changes.nothing_more
        )

    def complete_task(
        self, actor: Actor, task_id: uuid.UUID, *, expected_version: int | None = None
    ) -> OperationResult[Task]:
        """Complete an OPEN or IN_PROGRESS task whose subtasks are all done."""

        def decide(task: Task, below: Sequence[Task], now: datetime) -> Decision:
            moved = task.transition(TaskCall.COMPLETE, TaskStatus.COMPLETED, at=now, completed_at=now)
            if not moved.ok:
                return moved.as_failure()
            still_open = [t for t in below if t.is_open]
            if still_open:
                # Name only the subtasks the caller may read; the count covers them all.
                ids = [str(t.id) for t in still_open if permissions.can_read(actor, t)]
                return OperationResult.failed_precondition(
                    f"task {task.id} has {len(still_open)} open subtask(s)"
                    + (f": {', '.join(ids)}" if ids else ""),
                    current_state=task.status,
                    open_subtasks=ids,
                    open_subtask_count=len(still_open),
                )
            after = moved.value
            events = self._status_events(TaskEventType.COMPLETED, task, after, actor)
            return OperationResult.success(changes.Change.of(task, after, events))

        return self._change(actor, task_id, permissions.COMPLETE, expected_version, decide, _open_subtree)

    def cancel_task(
        self, actor: Actor, task_id: uuid.UUID, reason: str = "", *, expected_version: int | None = None
    ) -> OperationResult[Task]:
        """Cancel an OPEN or IN_PROGRESS task and, with it, every open task below it."""
        violations = list(validation.text("reason", reason, max_length=types.REASON_MAX))
        if violations:
            return OperationResult.invalid(*violations)

        def decide(task: Task, below: Sequence[Task], now: datetime) -> Decision:
            moved = task.transition(
                TaskCall.CANCEL, TaskStatus.CANCELLED, at=now, cancel_reason=reason or None
            )
            if not moved.ok:
                return moved.as_failure()
            after = moved.value
            writes = [(after, task.version)]
            emitted = self._status_events(TaskEventType.CANCELLED, task, after, actor, reason)
            cascade_reason = reason or f"parent task {task.id} cancelled"
            for subtask in below:
                # Through the state machine: what it does not let cancel (closed tasks) stays.
                cascaded = subtask.transition(
                    TaskCall.CANCEL, TaskStatus.CANCELLED, at=now, cancel_reason=cascade_reason
                )
                if cascaded.ok:
                    writes.append((cascaded.value, subtask.version))
                    emitted += self._status_events(
                        TaskEventType.CANCELLED, subtask, cascaded.value, actor, cascade_reason
                    )
            return OperationResult.success(changes.Change(after, writes, emitted))

        return self._change(actor, task_id, permissions.CANCEL, expected_version, decide, _open_subtree)

    def reopen_task(
        self, actor: Actor, task_id: uuid.UUID, *, expected_version: int | None = None
    ) -> OperationResult[Task]:
        """Move a COMPLETED or CANCELLED task back to OPEN."""

        def decide(task: Task, _: None, now: datetime) -> Decision:
            moved = task.transition(
                TaskCall.REOPEN, TaskStatus.OPEN, at=now, completed_at=None, cancel_reason=None
            )
            if not moved.ok:
                return moved.as_failure()
            after = moved.value
            event = self._event(TaskEventType.STATUS_CHANGED, types.status_event(task, after), actor, after)
            return OperationResult.success(changes.Change.of(task, after, [event]))

        return self._change(
            actor, task_id, permissions.REOPEN, expected_version, decide, changes.nothing_more
        )

    def delete_task(
        self, actor: Actor, task_id: uuid.UUID, *, expected_version: int | None = None
    ) -> OperationResult[Task]:
        """Delete a task and its whole subtree, one task.deleted per task; returns the root."""

        def attempt() -> OperationResult[Task]:
            with self._uow() as uow:
                task = uow.tasks.get(actor.tenant, task_id)
                refused = changes.refusal(TASKS, actor, task_id, task, permissions.DELETE, expected_version)
                if refused is not None:
                    return refused
                assert task is not None
                subtree = [*uow.tasks.descendants(task.tenant, task.id)]
                for doomed in [*reversed(subtree), task]:  # children before their parents
                    uow.tasks.delete(doomed)
                    uow.events.append(
                        self._event(TaskEventType.DELETED, types.task_event(doomed), actor, doomed)
                    )
                uow.commit()
            return OperationResult.success(task)

        return guarded_change("task", task_id, attempt, unconditional=expected_version is None)

    # -- tasks in jobs ---------------------------------------------------------------------

    @changes.reading("job")  # a listing of the job, as the ListJobTasks RPC says
    def list_job_tasks(
        self, actor: Actor, job_id: uuid.UUID, *, page_size: int = 0, page_token: str = ""
    ) -> OperationResult[Page[Task]]:
        """The tasks of a job the actor may read, in creation order; the job must be one the
        actor may read (NOT_FOUND otherwise)."""
        reader = actor.id if permissions.reads_only_own(actor) else None
        fingerprint = pagination.fingerprint("job-tasks", actor.tenant, job_id, reader)
        try:
            request = pagination.page_request(page_size, page_token, fingerprint)
        except pagination.InvalidPageRequest as exc:
            return OperationResult.invalid_argument(exc.field, exc.description)
        with self._uow(read_only=True) as uow:
            if not self._jobs.can_read_job(uow, actor, job_id):
                return OperationResult.not_found("job", job_id)
            if not permissions.may_ever(actor, permissions.READ):
                return OperationResult.success(Page(items=[]))
            rows = uow.tasks.list(
                actor.tenant,
                TaskFilters(job_id=job_id),
                reader=reader,
                after=request.after,
                limit=request.size + 1,
            )
        return OperationResult.success(pagination.make_page(rows, request, fingerprint))

    def link_task(
        self, actor: Actor, job_id: uuid.UUID, task_id: uuid.UUID, *, expected_version: int | None = None
    ) -> OperationResult[Task]:
        """Put a top-level task (and its subtasks) in a job the actor may read; emits
        task.linked for each. The actor must be able to update the task."""
        return self._relink(actor, job_id, task_id, link=True, expected_version=expected_version)

    def unlink_task(
        self, actor: Actor, job_id: uuid.UUID, task_id: uuid.UUID, *, expected_version: int | None = None
    ) -> OperationResult[Task]:
        """Take a top-level task (and its subtasks) out of the job; emits task.unlinked for each."""
        return self._relink(actor, job_id, task_id, link=False, expected_version=expected_version)

    def _relink(
        self, actor: Actor, job_id: uuid.UUID, task_id: uuid.UUID, *, link: bool, expected_version: int | None
    ) -> OperationResult[Task]:
        event_type = TaskEventType.LINKED if link else TaskEventType.UNLINKED

        def job_first(uow: UnitOfWork) -> OperationResult[Never] | None:
            # The job is named first in the call, and refused first.
            if not self._jobs.can_read_job(uow, actor, job_id):
                return OperationResult.not_found("job", job_id)
            return None

        def below(work: UnitOfWork, task: Task) -> list[Task]:
            # The subtree only when the decision will move it: a refusal or a task already
            # where it should be reads nothing more.
            target = job_id if link else None
            moves = _relink_refusal(task, job_id, link=link) is None and task.job_id != target
            return _subtree(work, task) if moves else []

        def decide(task: Task, below: Sequence[Task], now: datetime) -> Decision:
            refused = _relink_refusal(task, job_id, link=link)
            if refused is not None:
                return refused
            if task.job_id == (job_id if link else None):
                return OperationResult.success(changes.Change.nothing(task))
            writes, emitted = [], []
            for member in [task, *below]:
                after = member.changed(at=now, job_id=job_id if link else None)
                payload = types.link_event(after, job_id)
                writes.append((after, member.version))
                emitted.append(
                    new_event(
                        event_type,
                        payload,
                        actor=actor,
                        clock=self._clock,
                        resource_id=after.id,
                        job_id=job_id,
                    )
                )
            return OperationResult.success(changes.Change(writes[0][0], writes, emitted))

        return changes.change(
            self._uow,
            self._clock,
            TASKS,
            actor,
            task_id,
            permissions.UPDATE,
            expected_version,
            decide,
            below,
            first=job_first,
        )

    # -- reactions to job events (durable, driven from the event log) ---------------------

    def reactions(self) -> list[Reaction[UnitOfWork]]:
        """What tasks do when their job is cancelled or deleted."""
        return [Reaction.of("tasks.follow-jobs", ("job.cancelled", "job.deleted"), self._on_job_event)]

    def _on_job_event(self, work: UnitOfWork, event: Event) -> None:
        """job.cancelled cancels the job's open tasks; job.deleted unlinks all its tasks."""
        actor = system_actor(event.tenant)
        now = self._clock.now()
        job_id = event.resource_id
        for task in work.tasks.by_job(event.tenant, job_id):
            if event.type == "job.cancelled":
                reason = f"job {job_id} cancelled"
                cancelled = task.transition(
                    TaskCall.CANCEL, TaskStatus.CANCELLED, at=now, cancel_reason=reason
                )
                if not cancelled.ok:
                    continue  # closed already: the state machine leaves it
                after = cancelled.value
                work.tasks.save(after, expected_version=task.version)
                work.events.append(*self._status_events(TaskEventType.CANCELLED, task, after, actor, reason))
            else:
                after = task.changed(at=now, job_id=None)
                work.tasks.save(after, expected_version=task.version)
                payload = types.task_event(after, ("job_id",))
                work.events.append(self._event(TaskEventType.UPDATED, payload, actor, after))

    # -- shared steps -----------------------------------------------------------------------

    def _change(
        self,
        actor: Actor,
        task_id: uuid.UUID,
        action: str,
        expected_version: int | None,
        decide: changes.Decide[Task, C],
        load: changes.Load[Task, C],
    ) -> OperationResult[Task]:
        """The shared change (core/services/changes.py) of one task (and the tasks it cascades to)."""
        return changes.change(
            self._uow, self._clock, TASKS, actor, task_id, action, expected_version, decide, load
        )

    def _status_events(
        self, specific: TaskEventType, before: Task, after: Task, actor: Actor, reason: str = ""
    ) -> list[Event]:
        """The specific lifecycle event and task.status_changed, sharing one payload."""
        payload = types.status_event(before, after, reason)
        return [
            self._event(specific, payload, actor, after),
            self._event(TaskEventType.STATUS_CHANGED, payload, actor, after),
        ]

    def _event(self, event_type: TaskEventType, payload: Payload, actor: Actor, task: Task) -> Event:
        return new_event(
            event_type, payload, actor=actor, clock=self._clock, resource_id=task.id, job_id=task.job_id
        )


def _subtree(work: UnitOfWork, task: Task) -> list[Task]:
    """Every task below ``task``, parents before their children."""
    return list(work.tasks.descendants(task.tenant, task.id))


def _open_subtree(work: UnitOfWork, task: Task) -> list[Task]:
    """The tasks below ``task``, when it is open: only an open task completes or cancels
    (a closed one is refused without reading them)."""
    return _subtree(work, task) if task.is_open else []


def _relink_refusal(task: Task, job_id: uuid.UUID, *, link: bool) -> OperationResult[Never] | None:
    if task.parent_id is not None:
        return OperationResult.failed_precondition(
            f"task {task.id} is a subtask: it follows the job of its parent {task.parent_id}",
            parent_id=str(task.parent_id),
        )
    if link and task.job_id not in (None, job_id):
        return OperationResult.failed_precondition(
            f"task {task.id} belongs to job {task.job_id}: unlink it first", job_id=str(task.job_id)
        )
    if not link and task.job_id != job_id:
        return OperationResult.failed_precondition(f"task {task.id} is not linked to job {job_id}")
    return None


def _assign_payload(old_assignee: str | None, task: Task) -> types.TaskAssignEvent:
    return types.TaskAssignEvent(
        task_id=task.id,
        owner=task.owner,
        old_assignee=old_assignee,
        new_assignee=task.assignee,
        job_id=task.job_id,
        version=task.version,
        owners_above=task.owners_above,
    )
