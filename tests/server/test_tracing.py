"""Traces: a call's span with its database statements as child spans, and the caller's
trace context on the events the call causes."""

from __future__ import annotations

import grpc
from jobtask.v1 import events_pb2, events_pb2_grpc, jobs_pb2, jobs_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server.config import Settings
from server.tracing import Tracing
from tests.e2e.conftest import ServerThread, auth

OPS = auth("ops", roles=("operator",))
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_a_call_is_a_span_with_its_statements_below_and_its_events_carry_the_trace(
    settings: Settings,
) -> None:
    exported = InMemorySpanExporter()
    server = ServerThread(settings)
    server.thread.start()
    from server.app import build_application, start_server

    server.app = build_application(settings)
    server.app.tracing = Tracing(exported, batch=False)
    server.app.tracing.instrument(server.app.engine)
    server.running = server.run(start_server(server.app, "127.0.0.1:0"))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.running.port}") as channel:
            jobs = jobs_pb2_grpc.JobServiceStub(channel)  # type: ignore[no-untyped-call]
            created = jobs.CreateJob(
                jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="traced", kind="k")),
                metadata=[*OPS, ("traceparent", TRACEPARENT)],
            ).job
            stream = events_pb2_grpc.EventServiceStub(channel).Subscribe(  # type: ignore[no-untyped-call]
                events_pb2.SubscribeRequest(after_sequence=0), metadata=OPS
            )
            event = next(stream).event
            stream.cancel()
    finally:
        server.stop()

    assert (event.type, event.resource_id, event.correlation_id) == ("job.created", created.id, TRACEPARENT)
    spans = exported.get_finished_spans()
    [call] = [s for s in spans if s.name == "/jobtask.v1.JobService/CreateJob"]
    assert format(call.context.trace_id, "032x") == TRACE_ID  # the caller's trace, continued
    # The scheduler's, the reactions' and the feed's statements outside calls start no trace.
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    below = [s for s in spans if s.parent is not None and s.parent.span_id == call.context.span_id]
    statements = " ".join(str(s.attributes.get("db.statement", "")) for s in below)
    assert "INSERT INTO jobs" in statements and "events" in statements, [s.name for s in below]
