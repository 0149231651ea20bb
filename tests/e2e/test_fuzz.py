"""Every RPC of the protos called with random and boundary values for every field, built
from the descriptors: no call answers INTERNAL or UNKNOWN, no traceback is logged, and a
call the server refuses changes no row.

Requests are made of strings (empty, long, control characters, non-ASCII digits, UUIDs and
ids the server issued), integers at their type's bounds, enum numbers out of range,
timestamps and durations at and past their limits, Struct payloads (nested, NaN), field
masks naming anything, maps and repeated fields. A bounded number of examples per RPC runs
in `make test`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as d
from google.protobuf import message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobtask.v1 import events_pb2, events_pb2_grpc, jobs_pb2, jobs_pb2_grpc, tasks_pb2
from sqlalchemy import text

from server.auth import AuthMode
from server.config import Settings
from server.errors import operation_result_of
from tests.conftest import reset_postgres
from tests.e2e.conftest import SECRET, ServerThread, auth

EXAMPLES = 60
ADMIN = auth("fuzz", roles=("admin",))
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

_ids: list[str] = []


SPECIAL_STRINGS = ["", " ", "²", "٣", "0", "-1", "9" * 40, "a" * 300, "\x00", "x\ny", "job.*", "*"]


def _strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(SPECIAL_STRINGS),
        st.sampled_from(SPECIAL_STRINGS),
        st.uuids().map(str),
        st.sampled_from(_ids) if _ids else st.just("0190d6a4-0000-7000-8000-000000000000"),
        st.text(max_size=40),
    )


def _scalar(field: d.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == d.FieldDescriptor.TYPE_STRING:
        return _strings()
    if kind == d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (d.FieldDescriptor.TYPE_INT32, d.FieldDescriptor.TYPE_SINT32, d.FieldDescriptor.TYPE_SFIXED32):
        return st.one_of(st.sampled_from([*INT32, 0, -1, 1]), st.integers(*INT32))
    if kind in (d.FieldDescriptor.TYPE_INT64, d.FieldDescriptor.TYPE_SINT64, d.FieldDescriptor.TYPE_SFIXED64):
        return st.one_of(st.sampled_from([*INT64, 0, -1, 1]), st.integers(*INT64))
    if kind in (d.FieldDescriptor.TYPE_UINT32, d.FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if kind in (d.FieldDescriptor.TYPE_UINT64, d.FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if kind in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if kind == d.FieldDescriptor.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-5, 50))
    if kind == d.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=20)
    raise AssertionError(f"no strategy for {field.full_name}")


def _json() -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=10))
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=20,
    )


def _fill(message: Any, draw: Any, depth: int) -> None:
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        message.seconds = draw(
            st.sampled_from([0, -1, 253402300799, 253402300800, -62135596800, -62135596801, 2**40])
        )
        message.nanos = draw(st.sampled_from([0, 999_999_999, 1_000_000_000, -1]))
        return
    if name == "google.protobuf.Duration":
        message.seconds = draw(st.sampled_from([0, 1, -1, 315576000000, 315576000001, 2**40]))
        message.nanos = draw(st.sampled_from([0, 999_999_999, -1]))
        return
    if name == "google.protobuf.Struct":
        payload = draw(st.dictionaries(st.text(max_size=8), _json(), max_size=4))
        with contextlib.suppress(ValueError, TypeError):  # a value Struct cannot hold
            message.update(payload)
        return
    if name == "google.protobuf.FieldMask":
        message.paths.extend(draw(st.lists(_strings(), max_size=3)))
        return
    for field in message.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entries = draw(st.dictionaries(_strings(), _strings(), max_size=3))
            target = getattr(message, field.name)
            value_field = field.message_type.fields_by_name["value"]
            for key, value in entries.items():
                if value_field.message_type is None:
                    target[key] = value
            continue
        if field.message_type is not None:
            if depth > 4:
                continue
            if field.is_repeated:
                for _ in range(draw(st.integers(0, 2))):
                    _fill(getattr(message, field.name).add(), draw, depth + 1)
            else:
                _fill(getattr(message, field.name), draw, depth + 1)
            continue
        strategy = _scalar(field)
        try:
            if field.is_repeated:
                getattr(message, field.name).extend(draw(st.lists(strategy, max_size=3)))
            else:
                setattr(message, field.name, draw(strategy))
        except (ValueError, TypeError):
            pass  # a value protobuf itself refuses to hold (e.g. invalid UTF-8)


def _is_request_path(message: d.Descriptor, path: str) -> bool:
    """True when ``path`` (``job.schedule.cron.expression``, ``labels['k']``) names a field
    of ``message``; "request" names the whole (undecodable) request."""
    if path == "request":
        return True
    descriptor: d.Descriptor | None = message
    for name in path.split("[", 1)[0].split("."):  # a map key, in brackets, comes last
        if descriptor is None or name not in descriptor.fields_by_name:
            return False
        field = descriptor.fields_by_name[name]
        descriptor = field.message_type if field.type == d.FieldDescriptor.TYPE_MESSAGE else None
    return True


def _unary_methods() -> list[d.MethodDescriptor]:
    return [
        method
        for module in (jobs_pb2, tasks_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if not method.server_streaming
    ]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fuzzed_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    if request.param == "postgresql":
        engine = request.getfixturevalue("postgres_engine")
        reset_postgres(engine)
        url = engine.url.render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    # The scheduler steps once at start, then not again: only calls change rows.
    settings_ = Settings(
        database_url=url,
        auth_mode=AuthMode.JWT,
        jwt_secret=SECRET,
        log_format="text",
        workers=4,
        scheduler_interval_s=3600.0,
    )
    server = ServerThread(settings_)
    address = server.start()
    with grpc.insecure_channel(address) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        _ids.clear()
        for n in range(3):
            request_ = jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=f"j{n}", kind="k"))
            _ids.append(jobs.CreateJob(request_, metadata=ADMIN).job.id)
        yield Fuzzed(channel, server)
    server.stop()


class Fuzzed:
    """The channel to the fuzzed server, and a look at its rows."""

    def __init__(self, channel: grpc.Channel, server: ServerThread) -> None:
        self.channel = channel
        self.server = server

    def rows(self) -> tuple[object, ...]:
        """A fingerprint of every row a call could change, once the reactions are idle."""
        assert self.server.app is not None
        self.server.app.reactor.run_until_idle()
        with self.server.app.engine.connect() as connection:
            return tuple(
                tuple(connection.execute(text(query)).one())
                for query in (
                    "SELECT count(*), coalesce(sum(version), 0) FROM jobs",
                    "SELECT count(*), coalesce(sum(version), 0) FROM tasks",
                    "SELECT count(*), count(finished_at), count(heartbeat_at) FROM job_runs",
                    "SELECT count(*), coalesce(max(sequence), 0) FROM events",
                )
            )


@pytest.mark.parametrize("method", _unary_methods(), ids=lambda m: m.name)
def test_no_request_makes_the_server_fail(
    fuzzed_server: Fuzzed, method: d.MethodDescriptor, caplog: pytest.LogCaptureFixture
) -> None:
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    call = fuzzed_server.channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        request = request_class()
        _fill(request, data.draw, 0)
        code, details, named = grpc.StatusCode.OK, "", []
        before = fuzzed_server.rows()
        try:
            call(request, metadata=ADMIN, timeout=30)
        except grpc.RpcError as error:
            code, details = error.code(), error.details()
            result = operation_result_of(error)
            named = [v.field for v in result.field_violations] if result is not None else []
        assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
            f"{method.name}({request}) -> {code}: {details}"
        )
        unknown = [field for field in named if not _is_request_path(method.input_type, field)]
        assert not unknown, f"{method.name} named {unknown}, which are not fields of its request"
        if code is not grpc.StatusCode.OK:
            assert fuzzed_server.rows() == before, f"{method.name}({request}) -> {code} changed rows"

    with caplog.at_level(logging.WARNING):
        check()
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text


def test_no_subscription_makes_the_server_fail(
    fuzzed_server: Fuzzed, caplog: pytest.LogCaptureFixture
) -> None:
    subscribe = events_pb2_grpc.EventServiceStub(fuzzed_server.channel).Subscribe  # type: ignore[no-untyped-call]
    acceptable = {
        grpc.StatusCode.DEADLINE_EXCEEDED,  # a valid stream, read until the test's deadline
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }

    @settings(
        max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        request = events_pb2.SubscribeRequest()
        _fill(request, data.draw, 0)
        with pytest.raises(grpc.RpcError) as ended:
            for _ in subscribe(request, metadata=ADMIN, timeout=0.3):
                pass
        code = ended.value.code()
        assert code in acceptable, f"Subscribe({request}) -> {code}: {ended.value.details()}"

    with caplog.at_level(logging.WARNING):
        check()
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text
