"""OpenTelemetry traces, off by default: a span per call (the gRPC server
instrumentation) with the database statements it runs as child spans (the SQLAlchemy
instrumentation on the service's engine), exported over OTLP/HTTP as the standard
``OTEL_EXPORTER_OTLP_*`` variables say (or printed, for a look without a collector).

The tracer provider belongs to the server that made it, not to the process: several
servers in one process (tests) each keep their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes
from sqlalchemy import Engine

EXPORTERS = ("off", "otlp", "console")


class CallsOnly(Sampler):
    """Starts traces at calls only: a statement outside any call (the scheduler's, the
    reactions', the feed's polling) is not recorded; inside one, it follows its parent."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        decision = Decision.RECORD_AND_SAMPLE if kind is SpanKind.SERVER else Decision.DROP
        return SamplingResult(decision, attributes if decision is Decision.RECORD_AND_SAMPLE else None)

    def get_description(self) -> str:
        return "CallsOnly"


class Tracing:
    """The tracer provider of one server and what it instruments."""

    def __init__(self, exporter: SpanExporter, *, batch: bool = True) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "jobtask"}), sampler=ParentBased(root=CallsOnly())
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)

    @staticmethod
    def from_setting(exporter: str) -> Tracing | None:
        """Tracing for the ``--traces`` setting: None when off."""
        if exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            return Tracing(OTLPSpanExporter())
        if exporter == "console":
            return Tracing(ConsoleSpanExporter())
        return None

    def server_interceptors(self) -> list[Any]:
        """The interceptor that opens a span for each unary call (continuing a caller's trace
        from its ``traceparent`` header). Event streams are not traced: a span over a
        stream's whole life says little, and the instrumentation expects streams written
        as generators, which Subscribe is not."""
        unary = filters.negate(filters.service_name("jobtask.v1.EventService"))
        return [aio_server_interceptor(tracer_provider=self.provider, filter_=unary)]  # type: ignore[no-untyped-call]

    def instrument(self, engine: Engine) -> None:
        """Record each statement on ``engine`` as a span under the current one."""
        tracer = trace.get_tracer(__name__, tracer_provider=self.provider)
        usage = NoOpMeterProvider().get_meter(__name__).create_up_down_counter("db.client.connections.usage")
        EngineTracer(tracer, engine, usage)  # type: ignore[no-untyped-call]

    def shutdown(self) -> None:
        """Export what is buffered and stop."""
        self.provider.shutdown()
