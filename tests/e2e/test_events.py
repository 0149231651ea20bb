"""EventService.Subscribe over a real channel: exact events, resume, tenants, backpressure, retention."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from jobtask.v1 import events_pb2, events_pb2_grpc, jobs_pb2, jobs_pb2_grpc, tasks_pb2, tasks_pb2_grpc

from server.config import Settings
from server.errors import operation_result_of
from tests.e2e.conftest import ServerThread, auth

OPS = auth("ops", roles=("operator",))
ANN = auth("ann", roles=("member",))
OTHER = auth("root", tenant="globex", roles=("admin",))


class Collector:
    """Reads a Subscribe stream on a thread into a list."""

    def __init__(self, channel: grpc.Channel, metadata: Any, **request: Any) -> None:
        stub = events_pb2_grpc.EventServiceStub(channel)
        self.call = stub.Subscribe(events_pb2.SubscribeRequest(**request), metadata=metadata)
        self.events: list[events_pb2.Event] = []
        self.heartbeats: list[events_pb2.Heartbeat] = []
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                if response.HasField("event"):
                    self.events.append(response.event)
                else:
                    self.heartbeats.append(response.heartbeat)
        except grpc.RpcError as error:
            self.error = error

    def wait_for(self, count: int, timeout: float = 15) -> list[events_pb2.Event]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.01)
        assert len(self.events) >= count, f"got {len(self.events)} events of {count}: {self.error}"
        return self.events

    def cancel(self) -> None:
        self.call.cancel()
        self.thread.join(timeout=5)


@pytest.fixture
def stubs(channel: grpc.Channel) -> tuple[Any, Any]:
    return jobs_pb2_grpc.JobServiceStub(channel), tasks_pb2_grpc.TaskServiceStub(channel)


def lifecycle(jobs: Any, tasks: Any) -> None:
    job = jobs.CreateJob(jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="n", kind="k")), metadata=ANN).job
    jobs.StartJob(jobs_pb2.StartJobRequest(id=job.id), metadata=OPS)
    jobs.CompleteJob(jobs_pb2.CompleteJobRequest(id=job.id), metadata=OPS)
    # Not in the job: a task of a job also moves the job's counters (job.updated, by a reaction).
    task = tasks.CreateTask(tasks_pb2.CreateTaskRequest(task=tasks_pb2.Task(title="t")), metadata=ANN)
    tasks.AssignTask(tasks_pb2.AssignTaskRequest(id=task.task.id, assignee="carl"), metadata=ANN)
    tasks.CompleteTask(tasks_pb2.CompleteTaskRequest(id=task.task.id), metadata=ANN)


SCRIPT = [
    "job.created",
    "job.started",
    "job.status_changed",
    "job.succeeded",
    "job.status_changed",
    "task.created",
    "task.assigned",
    "task.completed",
    "task.status_changed",
]


def test_a_subscriber_sees_the_exact_events_of_a_lifecycle_in_order(
    channel: grpc.Channel, stubs: tuple[Any, Any]
) -> None:
    subscriber = Collector(channel, OPS, after_sequence=0)
    lifecycle(*stubs)
    events = subscriber.wait_for(len(SCRIPT))
    subscriber.cancel()
    assert [e.type for e in events] == SCRIPT
    assert [e.sequence for e in events] == list(range(1, len(SCRIPT) + 1))
    assert events[0].job_event.name == "n"
    assert events[6].task_assign_event.new_assignee == "carl"
    assert {e.job_id for e in events[:5]} == {events[0].resource_id}
    assert {e.resource_id for e in events[5:]} == {events[5].task_event.task_id}


def test_resuming_after_a_disconnect_loses_and_repeats_nothing(
    channel: grpc.Channel, stubs: tuple[Any, Any]
) -> None:
    lifecycle(*stubs)
    first = Collector(channel, OPS, after_sequence=0)
    seen = first.wait_for(4)[:4]
    first.cancel()
    lifecycle(*stubs)
    second = Collector(channel, OPS, after_sequence=seen[-1].sequence)
    rest = second.wait_for(2 * len(SCRIPT) - 4)
    second.cancel()
    assert [e.sequence for e in seen + rest] == list(range(1, 2 * len(SCRIPT) + 1))


def test_another_tenant_sees_none_of_it(channel: grpc.Channel, stubs: tuple[Any, Any]) -> None:
    outsider = Collector(
        channel, OTHER, after_sequence=0, heartbeat_interval=duration_pb2.Duration(nanos=100_000_000)
    )
    member = Collector(channel, auth("carl", roles=("member",)), after_sequence=0, types=["task.*"])
    lifecycle(*stubs)
    assert [e.type for e in member.wait_for(3)] == ["task.assigned", "task.completed", "task.status_changed"]
    time.sleep(0.5)
    outsider.cancel()
    member.cancel()
    assert outsider.events == []
    assert outsider.heartbeats
    assert outsider.heartbeats[-1].sequence == len(SCRIPT)


def test_bad_requests_are_invalid(channel: grpc.Channel) -> None:
    stub = events_pb2_grpc.EventServiceStub(channel)
    for request in (
        events_pb2.SubscribeRequest(types=["job .*"]),
        events_pb2.SubscribeRequest(resource_ids=["nope"]),
        events_pb2.SubscribeRequest(heartbeat_interval=duration_pb2.Duration(seconds=99999)),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            next(iter(stub.Subscribe(request, metadata=OPS)))
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def small_buffer_server(serve: Callable[[Settings], ServerThread], settings: Settings) -> ServerThread:
    return serve(replace(settings, subscriber_buffer=20))


def test_a_slow_subscriber_is_cut_while_a_fast_one_gets_everything(small_buffer_server: ServerThread) -> None:
    assert small_buffer_server.running is not None
    address = f"127.0.0.1:{small_buffer_server.running.port}"
    # A tiny receive window, so an unread stream backs up into the server quickly.
    slow_options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]
    with (
        grpc.insecure_channel(address) as fast_channel,
        grpc.insecure_channel(address, slow_options) as slow_channel,
    ):
        jobs = jobs_pb2_grpc.JobServiceStub(fast_channel)
        stub = events_pb2_grpc.EventServiceStub(slow_channel)
        slow = stub.Subscribe(events_pb2.SubscribeRequest(after_sequence=0), metadata=OPS)
        fast = Collector(fast_channel, OPS, after_sequence=0)
        total = 400
        for n in range(total):
            jobs.CreateJob(jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=f"j{n}", kind="k")), metadata=ANN)
        assert [e.sequence for e in fast.wait_for(total)] == list(range(1, total + 1))
        received: list[int] = []
        with pytest.raises(grpc.RpcError) as raised:
            for response in slow:
                received.append(response.event.sequence)
        fast.cancel()
    error = raised.value
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    result = operation_result_of(error)
    assert result is not None
    last = int(result.details["last_sequence"])
    assert received == list(range(1, last + 1))
    assert last < total
    with grpc.insecure_channel(address) as channel:
        resumed = Collector(channel, OPS, after_sequence=last)
        rest = resumed.wait_for(total - last)
        resumed.cancel()
    assert [e.sequence for e in rest] == list(range(last + 1, total + 1))


def test_resuming_from_before_the_retention_horizon_is_out_of_range(
    server: ServerThread, channel: grpc.Channel, stubs: tuple[Any, Any]
) -> None:
    assert server.app is not None
    lifecycle(*stubs)
    server.app.settings = replace(server.app.settings, event_retention_h=0)
    assert server.run(server.app.blocking(server.app.prune_events)) == len(SCRIPT)
    stub = events_pb2_grpc.EventServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        next(iter(stub.Subscribe(events_pb2.SubscribeRequest(after_sequence=2), metadata=OPS)))
    assert raised.value.code() is grpc.StatusCode.OUT_OF_RANGE
    result = operation_result_of(raised.value)
    assert result is not None
    assert int(result.details["oldest_sequence"]) == len(SCRIPT) + 1
    lifecycle(*stubs)
    after = Collector(channel, OPS, after_sequence=len(SCRIPT))
    assert [e.sequence for e in after.wait_for(len(SCRIPT))] == list(
        range(len(SCRIPT) + 1, 2 * len(SCRIPT) + 1)
    )
    after.cancel()


def test_a_client_that_reads_nothing_is_ended_with_its_last_sequence(
    serve: Callable[[Settings], ServerThread], settings: Settings
) -> None:
    from core.common.actor import Actor
    from core.services.jobs.types import JobCreate

    server = serve(replace(settings, stream_stall_s=1.0, subscriber_buffer=100_000))
    assert server.running is not None and server.app is not None
    ops = Actor(id="ops", tenant="acme", roles=frozenset({"operator"}))
    for n in range(1500):  # far more than the transport buffers for a client that reads nothing
        server.app.jobs.create_job(ops, JobCreate(name=f"job {n} " + "x" * 150, kind="bulk"))
    options = [("grpc.http2.bdp_probe", 0)]
    with grpc.insecure_channel(f"127.0.0.1:{server.running.port}", options=options) as channel:
        call = events_pb2_grpc.EventServiceStub(channel).Subscribe(
            events_pb2.SubscribeRequest(after_sequence=0), metadata=OPS
        )
        time.sleep(3.0)  # not reading: the server's writes wait, then it gives up
        received = []
        with pytest.raises(grpc.RpcError) as ended:
            for response in call:
                received.append(response.event.sequence)
    assert ended.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "read nothing" in ended.value.details()
    result = operation_result_of(ended.value)
    assert result is not None
    last = int(result.details["last_sequence"])
    # The write that timed out may still have gone out: the client resumes after the last
    # sequence it received, which is the one in the details or the next.
    assert 0 < last < 3000 and received[-1] in (last, last + 1)
    assert received == list(range(1, received[-1] + 1))
