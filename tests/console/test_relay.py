"""The event relay against scripted streams: what the browser is sent when streams end,
fail, or cannot start."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from jobtask.v1 import events_pb2

from core.common.result import ErrorCode, OperationResult
from server.console import events
from server.console.api import Identity
from server.errors import rich_status


def event(sequence: int, kind: str = "job.created") -> events_pb2.SubscribeResponse:
    return events_pb2.SubscribeResponse(event=events_pb2.Event(sequence=sequence, type=kind, resource_id="r"))


def heartbeat(sequence: int) -> events_pb2.SubscribeResponse:
    return events_pb2.SubscribeResponse(heartbeat=events_pb2.Heartbeat(sequence=sequence))


def failure(
    result: OperationResult[Any] | None = None, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
) -> Exception:
    if result is None:
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone")
    assert result.error is not None
    status = rich_status(result.error)
    return grpc.aio.AioRpcError(
        status.code, grpc.aio.Metadata(), grpc.aio.Metadata(*status.trailing_metadata), status.details
    )


class Call:
    """One scripted Subscribe call: responses, then an ending (None: the server ends it)."""

    def __init__(
        self, items: list[Any], ending: Exception | None = None, *, refused: Exception | None = None
    ):
        self.items, self.ending, self.refused, self.cancelled = items, ending, refused, False

    async def initial_metadata(self) -> None:
        """A refused call ends without headers: this returns, and the call is done."""

    def done(self) -> bool:
        return self.refused is not None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._items()

    async def _items(self) -> AsyncIterator[Any]:
        if self.refused is not None:
            raise self.refused
        for item in self.items:
            yield item
        if self.ending is not None:
            raise self.ending

    def cancel(self) -> None:
        self.cancelled = True


class Api:
    target = "127.0.0.1:1"

    def __init__(self, calls: list[Call]) -> None:
        self.calls, self.requests = iter(calls), list[events_pb2.SubscribeRequest]()
        self.events = type("Stub", (), {"Subscribe": object()})()

    def stream(self, identity: Identity, method: Any, request: events_pb2.SubscribeRequest) -> Call:
        self.requests.append(request)
        return next(self.calls)


class FakeRequest:
    def __init__(self, api: Api, query: str = "type=job.*") -> None:
        from starlette.requests import Request

        scope = {"type": "http", "query_string": query.encode(), "headers": [], "app": None}
        self.query_params = Request(scope).query_params
        self.app = type("App", (), {"state": type("State", (), {"api": api})()})()
        self.state = type("State", (), {"identity": Identity(actor="ann", tenant="acme")})()


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "BACKOFF_S", (0.0,))


def frames(api: Api, after: int | None, count: int) -> list[tuple[str, str, str]]:
    """The first ``count`` frames (event, id, data) the relay sends."""

    async def collect() -> list[str]:
        sent: list[str] = []
        stream = events.relay(FakeRequest(api), after)  # type: ignore[arg-type]
        async for chunk in stream:
            if chunk.startswith("event:"):
                sent.append(chunk)
            if len(sent) == count:
                await stream.aclose()
                break
        return sent

    parsed = []
    # A thread of its own: no event loop of another test (Playwright's) is running there.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        chunks = thread.submit(asyncio.run, collect()).result(timeout=30)
    for chunk in chunks:
        name = re.search(r"^event: (.*)$", chunk, re.M)
        ident = re.search(r"^id: (.*)$", chunk, re.M)
        data = " ".join(re.findall(r"^data: (.*)$", chunk, re.M))
        parsed.append((name.group(1) if name else "", ident.group(1) if ident else "", data))
    return parsed


def test_a_stream_that_fails_resumes_after_the_last_event_relayed() -> None:
    api = Api(
        [
            Call([event(4), event(5)], failure()),
            Call([event(6)], failure(OperationResult.unavailable("shutting down", last_sequence=9))),
            Call([event(7)]),
        ]
    )

    sent = frames(api, 3, 12)

    assert [(name, ident, data if name == "status" else "") for name, ident, data in sent] == [
        ("live", "", ""),
        ("status", "", "live"),
        ("job", "4", ""),
        ("job", "5", ""),
        ("status", "", "reconnecting to jobtask…"),
        ("live", "", ""),
        ("status", "", "live"),
        ("job", "6", ""),
        ("status", "", "reconnecting to jobtask…"),
        ("live", "", ""),
        ("status", "", "live"),
        ("job", "7", ""),
    ]
    # Each subscription resumes after what the browser was given (not the server's claim).
    assert [r.after_sequence for r in api.requests] == [3, 5, 6]
    assert list(api.requests[0].types) == ["job.*"]


def test_heartbeats_move_the_resume_point_of_a_stream_from_now() -> None:
    api = Api([Call([heartbeat(41)], failure()), Call([event(42)])])

    sent = frames(api, None, 7)

    assert [(name, ident) for name, ident, _ in sent] == [
        ("live", ""),
        ("status", ""),
        ("position", "41"),
        ("status", ""),
        ("live", ""),
        ("status", ""),
        ("job", "42"),
    ]
    assert not api.requests[0].HasField("after_sequence")
    assert api.requests[1].after_sequence == 41


def test_a_stream_that_cannot_start_says_why_once_and_keeps_trying() -> None:
    too_many = OperationResult.resource_exhausted("actor ann already has 8 open streams", open_streams=8)
    api = Api([Call([], refused=failure(too_many)), Call([], refused=failure(too_many)), Call([event(1)])])

    sent = frames(api, 0, 4)

    assert sent[0] == ("status", "", "actor ann already has 8 open streams")  # said once, not per attempt
    assert [(name, ident) for name, ident, _ in sent[1:]] == [("live", ""), ("status", ""), ("job", "1")]
    assert len(api.requests) == 3


def test_a_server_that_ended_the_stream_without_an_event_is_not_asked_from_zero() -> None:
    shutting = OperationResult.unavailable("shutting down", last_sequence=0)
    api = Api([Call([], refused=failure(shutting)), Call([event(8)])])

    frames(api, None, 4)

    assert not api.requests[1].HasField("after_sequence")  # from now again, not the whole log


@pytest.mark.parametrize(
    ("after", "details", "resumed", "said"),
    [
        (5, {"oldest_sequence": 100, "last_sequence": 120}, 99, "events up to 99 are no longer kept"),
        (
            999,
            {"oldest_sequence": 1, "last_sequence": 120},
            120,
            "sequence 999 is past the end of the log (120)",
        ),
    ],
)
def test_a_resume_point_the_log_does_not_hold(
    after: int, details: dict[str, int], resumed: int, said: str
) -> None:
    gone = OperationResult.out_of_range("outside the log", **details)
    api = Api([Call([], refused=failure(gone)), Call([event(resumed + 1)])])

    sent = frames(api, after, 4)

    assert sent[0][0] == "status" and sent[0][2].startswith(said)
    assert api.requests[1].after_sequence == resumed
    assert sent[3][:2] == ("job", str(resumed + 1))


@pytest.mark.parametrize(
    ("refused", "frame_name", "words"),
    [
        (OperationResult.denied("read", "job", None, "ann"), "refusal", "Permission denied"),
        (
            OperationResult.failure(ErrorCode.UNAUTHENTICATED, "the token has expired"),
            "signin",
            "the token has expired",
        ),
    ],
)
def test_a_refusal_ends_the_relay_with_it_in_words(
    refused: OperationResult[Any], frame_name: str, words: str
) -> None:
    api = Api([Call([], refused=failure(refused))])

    sent = frames(api, None, 1)

    assert sent == [(frame_name, "", sent[0][2])]  # no "live" first: the call never opened
    assert words in sent[0][2]
    assert len(api.requests) == 1


def test_every_call_is_cancelled_when_the_browser_goes() -> None:
    first, second = Call([event(1)], failure()), Call([event(2), event(3)])
    api = Api([first, second])

    frames(api, 0, 8)

    assert first.cancelled and second.cancelled
