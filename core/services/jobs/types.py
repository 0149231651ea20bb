"""Job domain types, the job status machine as data, and the job event payloads."""

from __future__ import annotations

import dataclasses
import enum
import re
import uuid
import zoneinfo
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from croniter import croniter

from core.common import updates, validation
from core.common.result import FieldViolation, OperationResult
from core.common.updates import UNSET, Unset
from core.messaging import events


class JobStatus(enum.StrEnum):
    """Where a job is in its lifecycle."""

    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class JobCall(enum.StrEnum):
    """The lifecycle calls that move a job."""

    SCHEDULE = "schedule"
    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    PROMOTE = "promote"  # the scheduler: a due SCHEDULED job becomes PENDING
    RELEASE = "release"  # a claim whose caller left before it got the job gives it back


P, S, R = JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.RUNNING
OK, KO, X = JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED

# The job status machine: (from, call) -> the states the call may lead to.
TRANSITIONS: Final[Mapping[tuple[JobStatus, JobCall], frozenset[JobStatus]]] = {
    (P, JobCall.SCHEDULE): frozenset({S}),
    (P, JobCall.START): frozenset({R}),
    (P, JobCall.CANCEL): frozenset({X}),
    (S, JobCall.SCHEDULE): frozenset({S}),
    (S, JobCall.START): frozenset({R}),
    (S, JobCall.CANCEL): frozenset({X}),
    (S, JobCall.PROMOTE): frozenset({P}),
    (R, JobCall.COMPLETE): frozenset({OK, S}),  # SCHEDULED when the job recurs
    (R, JobCall.FAIL): frozenset({KO, S}),  # SCHEDULED when a retry remains
    (R, JobCall.CANCEL): frozenset({X}),
    (R, JobCall.RELEASE): frozenset({P}),
    (OK, JobCall.SCHEDULE): frozenset({S}),
    (KO, JobCall.SCHEDULE): frozenset({S}),
    (X, JobCall.SCHEDULE): frozenset({S}),
}

# The state each call is named after, used to word a refused transition.
CALL_TARGET: Final[Mapping[JobCall, JobStatus]] = {
    JobCall.SCHEDULE: S,
    JobCall.START: R,
    JobCall.COMPLETE: OK,
    JobCall.FAIL: KO,
    JobCall.CANCEL: X,
    JobCall.PROMOTE: P,
    JobCall.RELEASE: P,
}

TERMINAL: Final = frozenset({OK, KO, X})


class ScheduleKind(enum.StrEnum):
    """How a schedule fires."""

    ONCE = "ONCE"
    CRON = "CRON"
    INTERVAL = "INTERVAL"


MIN_INTERVAL = timedelta(seconds=1)
MAX_INTERVAL = timedelta(days=366)
# Instants a one-off schedule may name: far enough from the ends of the calendar that
# arithmetic on them cannot overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_BACKOFF = timedelta(days=7)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """When a job runs: once at an instant, by a cron expression in a zone, or every interval."""

    kind: ScheduleKind
    run_at: datetime | None = None
    cron: str | None = None
    timezone: str = "UTC"
    interval: timedelta | None = None

    @staticmethod
    def once(at: datetime) -> Schedule:
        """Run once at ``at``."""
        return Schedule(kind=ScheduleKind.ONCE, run_at=at)

    @staticmethod
    def cron_expression(expression: str, timezone: str = "UTC") -> Schedule:
        """Run at each instant ``expression`` names, read in ``timezone``."""
        return Schedule(kind=ScheduleKind.CRON, cron=expression, timezone=timezone)

    @staticmethod
    def every(interval: timedelta) -> Schedule:
        """Run every ``interval``."""
        return Schedule(kind=ScheduleKind.INTERVAL, interval=interval)

    @property
    def recurring(self) -> bool:
        """True for cron and interval schedules."""
        return self.kind is not ScheduleKind.ONCE

    def violations(self, field: str = "schedule") -> Iterator[FieldViolation]:
        """What is wrong with this schedule, field by field."""
        if self.kind is ScheduleKind.ONCE:
            if self.run_at is None:
                yield FieldViolation(f"{field}.run_at", "is required for a one-off schedule")
            elif self.run_at.tzinfo is None:
                yield FieldViolation(f"{field}.run_at", "must carry a time zone")
            elif not EARLIEST <= self.run_at <= LATEST:
                yield FieldViolation(f"{field}.run_at", f"must be between {EARLIEST.year} and {LATEST.year}")
        elif self.kind is ScheduleKind.CRON:
            if not self.cron or not _valid_cron(self.cron):
                yield FieldViolation(f"{field}.cron", f"is not a valid cron expression: {self.cron!r}")
            if _zone(self.timezone) is None:
                yield FieldViolation(f"{field}.timezone", f"is not an IANA time zone: {self.timezone!r}")
        elif self.interval is None or not MIN_INTERVAL <= self.interval <= MAX_INTERVAL:
            yield FieldViolation(
                f"{field}.interval",
                f"must be between {MIN_INTERVAL.total_seconds():g}s and {MAX_INTERVAL.days} days",
            )

    def first_fire(self, now: datetime) -> datetime:
        """When a job given this schedule at ``now`` first runs."""
        if self.kind is ScheduleKind.ONCE:
            assert self.run_at is not None
            return self.run_at
        return self.next_fire(now)

    def next_fire(self, after: datetime) -> datetime:
        """The first instant strictly after ``after`` at which a recurring schedule fires."""
        if self.kind is ScheduleKind.INTERVAL:
            assert self.interval is not None
            return after + self.interval
        if self.kind is ScheduleKind.ONCE:
            assert self.run_at is not None
            return self.run_at
        zone = _zone(self.timezone)
        assert zone is not None and self.cron is not None
        return _next_cron_fire(self.cron, zone, after).astimezone(after.tzinfo)


_CRON_FIELDS = re.compile(r"^\S+(\s+\S+){4}$")


def _next_cron_fire(expression: str, zone: zoneinfo.ZoneInfo, after: datetime) -> datetime:
    """The first instant strictly after ``after`` at which ``expression`` fires in ``zone``.

    The expression is read on the wall clock of ``zone``; where the clock jumps, the
    documented DST policy applies:

    - a time in the skipped hour (spring forward) runs once, at the jump, when the
      expression names its hours; with a wildcard or stepped hour field it runs in every
      real hour, and the skipped one simply does not exist;
    - a time in the repeated hour (fall back) runs once, at its first occurrence, when the
      expression names its hours; with a wildcard or stepped hour field it runs in both.
    """
    every_hour = _hour_is_wildcard(expression)
    # Start a little before `after` on the wall clock, so a wall time that repeats (and
    # whose second occurrence may still be ahead) is seen again.
    wall = after.astimezone(zone).replace(tzinfo=None) - timedelta(hours=3)
    candidates = croniter(expression, wall)
    for _ in range(10_000):
        local: datetime = candidates.get_next(datetime)
        for instant in _instants(local, zone, every_hour=every_hour):
            if instant > after:
                return instant
    raise ValueError(f"cron expression {expression!r} does not fire after {after.isoformat()}")


def _hour_is_wildcard(expression: str) -> bool:
    hours = expression.split()[1]
    return "*" in hours or "/" in hours


def _instants(local: datetime, zone: zoneinfo.ZoneInfo, *, every_hour: bool) -> list[datetime]:
    """The UTC instants a wall-clock time of ``zone`` stands for under the DST policy."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first.astimezone(zone).replace(tzinfo=None) != local:
        # Skipped: the wall clock never shows this time. fold=1 reads it with the offset
        # after the jump (an instant before the jump), fold=0 with the one before.
        return [] if every_hour else [_jump(zone, second, first)]
    # Repeated: fold=0 is the first occurrence, fold=1 the second.
    return [first, second] if every_hour else [first]


def _jump(zone: zoneinfo.ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant between ``before`` and ``after`` at which ``zone``'s offset changes."""
    low, high = int(before.timestamp()), int(after.timestamp())
    offset = before.astimezone(zone).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def _valid_cron(expression: str) -> bool:
    # Five fields only: seconds and years are not part of the contract. An expression that
    # never fires (February 30th) is as useless as a malformed one.
    if not _CRON_FIELDS.match(expression.strip()) or not croniter.is_valid(expression):
        return False
    try:
        croniter(expression, EARLIEST).get_next(datetime)
    except Exception:
        return False
    return True


def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    # A name that is a directory of the zone database ("America", "Etc") or too long for a
    # file name raises OSError rather than ZoneInfoNotFoundError.
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often a failed job is tried again, and how long to wait between attempts."""

    max_attempts: int = 1
    initial_backoff: timedelta = timedelta(seconds=1)
    max_backoff: timedelta = timedelta(minutes=5)
    multiplier: float = 2.0

    def violations(self, field: str = "retry_policy") -> Iterator[FieldViolation]:
        """What is wrong with this policy, field by field."""
        yield from validation.int_range(f"{field}.max_attempts", self.max_attempts, 1, 100)
        if not timedelta(0) < self.initial_backoff <= MAX_BACKOFF:
            yield FieldViolation(
                f"{field}.initial_backoff", f"must be positive and at most {MAX_BACKOFF.days} days"
            )
        if not self.initial_backoff <= self.max_backoff <= MAX_BACKOFF:
            yield FieldViolation(
                f"{field}.max_backoff", f"must be between initial_backoff and {MAX_BACKOFF.days} days"
            )
        if not 1.0 <= self.multiplier <= 10.0:
            yield FieldViolation(f"{field}.multiplier", f"must be between 1 and 10 (got {self.multiplier})")

    def backoff(self, failed_attempt: int) -> timedelta:
        """The wait after the ``failed_attempt``-th attempt failed (1-based)."""
        seconds = self.initial_backoff.total_seconds() * self.multiplier ** (failed_attempt - 1)
        return min(timedelta(seconds=seconds), self.max_backoff)

    def allows_retry(self, attempts_made: int) -> bool:
        """True when another attempt remains after ``attempts_made``."""
        return attempts_made < self.max_attempts


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """What a successful run produced."""

    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    message: str = ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A unit of machine work; changes return a new value with the next version."""

    id: uuid.UUID
    tenant: str
    name: str
    description: str = ""
    kind: str
    payload: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    priority: int = 0
    status: JobStatus = JobStatus.PENDING
    owner: str
    schedule: Schedule | None = None
    retry_policy: RetryPolicy = RetryPolicy()
    attempt_count: int = 0
    result: JobResult | None = None
    last_error: str | None = None
    next_run_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    version: int = 1
    task_total: int = 0
    task_done: int = 0
    request_id: str | None = None
    # A paused job keeps its schedule but the scheduler does not fire it.
    paused: bool = False
    # Set by CancelJob on a claimed RUNNING job: its worker learns it at its next heartbeat.
    cancel_requested: bool = False
    # What the worker of the current run last reported (percent, 0 to 100).
    progress: float | None = None
    progress_message: str = ""

    def transition(
        self, call: JobCall, target: JobStatus, *, at: datetime, **changes: Any
    ) -> OperationResult[Job]:
        """The job after ``call`` moves it to ``target`` at ``at``; refused per TRANSITIONS."""
        allowed = TRANSITIONS.get((self.status, call), frozenset())
        if target not in allowed:
            shown = CALL_TARGET[call] if not allowed else target
            return OperationResult.illegal_transition("job", self.id, self.status, shown)
        return OperationResult.success(self.changed(at=at, status=target, **changes))

    def changed(self, *, at: datetime, **changes: Any) -> Job:
        """A copy with ``changes``, the next version and ``updated_at``."""
        return dataclasses.replace(self, version=self.version + 1, updated_at=at, **changes)


class RunStatus(enum.StrEnum):
    """The outcome of one attempt."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobRun:
    """One attempt at a job, opened by start_job and closed by complete/fail/cancel."""

    id: uuid.UUID
    job_id: uuid.UUID
    tenant: str
    attempt: int
    started_by: str
    started_at: datetime
    finished_at: datetime | None = None
    status: RunStatus = RunStatus.RUNNING
    result: JobResult | None = None
    error: str | None = None
    # Set for a claimed run: who holds it, until when, and how long each heartbeat extends it.
    worker: str = ""
    lease_expires_at: datetime | None = None
    heartbeat_at: datetime | None = None
    lease_duration: timedelta | None = None

    @property
    def claimed(self) -> bool:
        """True for a run opened by ClaimJobs (it holds a lease); StartJob's runs do not."""
        return self.lease_expires_at is not None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A job a worker claimed, with the run (and lease) it now holds."""

    job: Job
    run: JobRun


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """What a heartbeat answers: the lease's new deadline and whether to stop."""

    job: Job
    run: JobRun
    cancel_requested: bool


DEFAULT_LEASE = timedelta(seconds=30)
MIN_LEASE, MAX_LEASE = timedelta(seconds=1), timedelta(hours=1)
MAX_CLAIM_WAIT = timedelta(seconds=60)
MAX_CLAIM = 100
PROGRESS_MESSAGE_MAX = 1_000


def lease_violations(field: str, lease: timedelta) -> list[FieldViolation]:
    """What is wrong with a lease duration."""
    if MIN_LEASE <= lease <= MAX_LEASE:
        return []
    return [FieldViolation(field, f"must be between {MIN_LEASE.seconds}s and {MAX_LEASE.seconds // 3600}h")]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobCreate:
    """What a caller gives to create a job."""

    name: str
    kind: str
    description: str = ""
    payload: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    priority: int = 0
    schedule: Schedule | None = None
    retry_policy: RetryPolicy | None = None
    request_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobUpdate:
    """The fields an update changes; UNSET ones stay as they are."""

    name: str | Literal[Unset.UNSET] = UNSET
    description: str | Literal[Unset.UNSET] = UNSET
    kind: str | Literal[Unset.UNSET] = UNSET
    payload: Mapping[str, Any] | Literal[Unset.UNSET] = UNSET
    labels: Mapping[str, str] | Literal[Unset.UNSET] = UNSET
    priority: int | Literal[Unset.UNSET] = UNSET
    schedule: Schedule | Literal[Unset.UNSET] | None = UNSET
    retry_policy: RetryPolicy | Literal[Unset.UNSET] = UNSET

    def changes(self) -> dict[str, Any]:
        """The fields this update sets, by name."""
        return updates.set_fields(self)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobFilters:
    """Which jobs a listing returns; empty fields do not filter."""

    statuses: frozenset[JobStatus] = frozenset()
    owner: str | None = None
    kinds: frozenset[str] = frozenset()
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    created_after: datetime | None = None
    created_before: datetime | None = None

    def fingerprint_parts(self) -> tuple[object, ...]:
        """A stable description, so a page token is not reused with another filter."""
        return (
            sorted(self.statuses),
            self.owner,
            sorted(self.kinds),
            sorted(self.labels.items()),
            self.created_after.isoformat() if self.created_after else None,
            self.created_before.isoformat() if self.created_before else None,
        )


KIND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]{0,99}$")
NAME_MAX, DESCRIPTION_MAX, REQUEST_ID_MAX = 200, 10_000, 200
PRIORITY_MIN, PRIORITY_MAX = 0, 1000


def field_violations(
    *,
    name: str | None = None,
    kind: str | None = None,
    description: str | None = None,
    payload: Any = None,
    labels: Mapping[str, str] | None = None,
    priority: int | None = None,
    schedule: Schedule | None = None,
    retry_policy: RetryPolicy | None = None,
) -> list[FieldViolation]:
    """Every violation among the given job fields (None means not given)."""
    found: list[FieldViolation] = []
    if name is not None:
        found += validation.text("name", name, max_length=NAME_MAX, required=True)
    if kind is not None and not KIND.match(kind):
        found.append(
            FieldViolation("kind", "must be 1-100 letters, digits or '_.:-/', starting alphanumeric")
        )
    if description is not None:
        found += validation.text("description", description, max_length=DESCRIPTION_MAX)
    if payload is not None:
        found += validation.json_object("payload", payload)
    if labels is not None:
        found += validation.labels("labels", labels)
    if priority is not None:
        found += validation.int_range("priority", priority, PRIORITY_MIN, PRIORITY_MAX)
    if schedule is not None:
        found += schedule.violations()
    if retry_policy is not None:
        found += retry_policy.violations()
    return found


# -- events ---------------------------------------------------------------------------


class JobEventType(enum.StrEnum):
    """The job event types."""

    CREATED = "job.created"
    UPDATED = "job.updated"
    DELETED = "job.deleted"
    STATUS_CHANGED = "job.status_changed"
    SCHEDULED = "job.scheduled"
    STARTED = "job.started"
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"
    CANCEL_REQUESTED = "job.cancel_requested"
    LEASE_EXPIRED = "job.lease_expired"
    PROGRESSED = "job.progressed"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobEvent(events.Payload):
    """A job was created, updated or deleted; ``changed_fields`` for updates."""

    job_id: uuid.UUID
    name: str
    kind: str
    owner: str
    status: JobStatus
    version: int
    changed_fields: tuple[str, ...] = ()
    task_total: int = 0
    task_done: int = 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobStatusEvent(events.Payload):
    """A job's status moved (also the payload of job.started and job.cancelled)."""

    job_id: uuid.UUID
    owner: str
    old_status: JobStatus
    new_status: JobStatus
    version: int
    run_id: uuid.UUID | None = None
    attempt: int = 0
    reason: str = ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobScheduleEvent(events.Payload):
    """A job was scheduled to run at ``next_run_at``."""

    job_id: uuid.UUID
    owner: str
    schedule_kind: ScheduleKind
    next_run_at: datetime
    version: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobResultEvent(events.Payload):
    """A run succeeded; ``next_run_at`` is set when the job recurs."""

    job_id: uuid.UUID
    owner: str
    run_id: uuid.UUID
    attempt: int
    result: Mapping[str, Any]
    message: str
    version: int
    next_run_at: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobErrorEvent(events.Payload):
    """A run failed; ``will_retry`` and ``next_attempt_at`` say whether it runs again."""

    job_id: uuid.UUID
    owner: str
    run_id: uuid.UUID
    attempt: int
    error: str
    will_retry: bool
    version: int
    next_attempt_at: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobProgressEvent(events.Payload):
    """The worker of a run reported progress."""

    job_id: uuid.UUID
    owner: str
    run_id: uuid.UUID
    progress: float | None
    message: str
    version: int


def job_event(job: Job, changed_fields: tuple[str, ...] = ()) -> JobEvent:
    """The JobEvent payload describing ``job``."""
    return JobEvent(
        job_id=job.id,
        name=job.name,
        kind=job.kind,
        owner=job.owner,
        status=job.status,
        version=job.version,
        changed_fields=changed_fields,
        task_total=job.task_total,
        task_done=job.task_done,
    )


def status_event(before: Job, after: Job, *, run: JobRun | None = None, reason: str = "") -> JobStatusEvent:
    """The JobStatusEvent payload of ``before`` becoming ``after``."""
    return JobStatusEvent(
        job_id=after.id,
        owner=after.owner,
        old_status=before.status,
        new_status=after.status,
        version=after.version,
        run_id=run.id if run else None,
        attempt=run.attempt if run else after.attempt_count,
        reason=reason,
    )
