"""core.messaging: the bus, topic patterns, and the payload codec."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from core.common.actor import Actor
from core.common.clock import FakeClock
from core.messaging import events
from core.messaging.bus import MessageBus, compile_pattern
from core.messaging.events import Event
from core.services.jobs import types as job_types
from core.services.tasks import types as task_types


def event(event_type: str, payload: events.Payload, sequence: int = 1) -> Event:
    actor = Actor(id="ann", tenant="acme", roles=frozenset({"member"}))
    made = events.new_event(
        event_type, payload, actor=actor, clock=FakeClock(), resource_id=uuid.uuid4(), job_id=None
    )
    return made.with_sequence(sequence)


def status_payload() -> job_types.JobStatusEvent:
    return job_types.JobStatusEvent(
        job_id=uuid.uuid4(),
        owner="ann",
        old_status=job_types.JobStatus.PENDING,
        new_status=job_types.JobStatus.RUNNING,
        version=2,
    )


class TestTopicPatterns:
    @pytest.mark.parametrize(
        ("pattern", "matching", "other"),
        [
            ("*", "job.created", None),
            ("job.*", "job.status_changed", "task.created"),
            ("task.completed", "task.completed", "task.completed2"),
            ("*.status_changed", "task.status_changed", "task.created"),
        ],
    )
    def test_patterns(self, pattern: str, matching: str, other: str | None) -> None:
        regex = compile_pattern(pattern)
        assert regex.match(matching)
        if other is not None:
            assert not regex.match(other)

    @pytest.mark.parametrize("pattern", ["", "job .*"])
    def test_bad_patterns_are_refused(self, pattern: str) -> None:
        with pytest.raises(ValueError, match="invalid topic pattern"):
            compile_pattern(pattern)


class TestMessageBus:
    def test_delivers_by_pattern_in_order(self) -> None:
        bus = MessageBus()
        jobs: list[int] = []
        cancellations: list[int] = []
        everything: list[int] = []
        bus.subscribe("job.*", lambda e: jobs.append(e.sequence))
        bus.subscribe("job.cancelled", lambda e: cancellations.append(e.sequence))
        bus.subscribe("*", lambda e: everything.append(e.sequence))

        bus.publish(
            [event("job.started", status_payload(), 1), event("job.status_changed", status_payload(), 2)]
        )
        bus.publish([event("job.cancelled", status_payload(), 3)])

        assert jobs == [1, 2, 3]
        assert cancellations == [3]
        assert everything == [1, 2, 3]

    def test_a_failing_handler_is_isolated(self, caplog: pytest.LogCaptureFixture) -> None:
        bus = MessageBus()
        seen: list[int] = []

        def broken(_: Event) -> None:
            raise RuntimeError("boom")

        bus.subscribe("*", broken)
        bus.subscribe("*", lambda e: seen.append(e.sequence))
        bus.publish([event("job.started", status_payload(), 7)])

        assert seen == [7]
        assert "job.started #7" in caplog.text


class TestCodec:
    def test_every_registered_event_type_is_known(self) -> None:
        assert {str(t) for t in job_types.JobEventType} | {str(t) for t in task_types.TaskEventType} == set(
            events.event_types()
        )

    def test_payloads_round_trip_through_json(self) -> None:
        payload = job_types.JobErrorEvent(
            job_id=uuid.uuid4(),
            owner="ann",
            run_id=uuid.uuid4(),
            attempt=2,
            error="boom",
            will_retry=True,
            version=4,
            next_attempt_at=datetime(2030, 1, 1, tzinfo=UTC),
        )
        encoded = events.encode_payload(payload)
        assert encoded["next_attempt_at"] == "2030-01-01T00:00:00+00:00"
        assert events.decode_payload("job.failed", encoded) == payload

        task_payload = task_types.TaskEvent(
            task_id=uuid.uuid4(),
            title="t",
            owner="ann",
            assignee=None,
            status=task_types.TaskStatus.OPEN,
            priority=task_types.TaskPriority.HIGH,
            parent_id=None,
            job_id=uuid.uuid4(),
            version=1,
            changed_fields=("title",),
        )
        assert events.decode_payload("task.updated", events.encode_payload(task_payload)) == task_payload

    def test_an_event_must_carry_its_registered_payload(self) -> None:
        with pytest.raises(TypeError, match="not the registered payload"):
            event("job.failed", status_payload())
        with pytest.raises(ValueError, match="already carries"):
            events.register(job_types.JobEvent, "job.failed")
