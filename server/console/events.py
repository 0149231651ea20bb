"""The live side of the console: EventService/Subscribe relayed to the browser as
server-sent events, and the events page that shows them.

Pages reload their live parts on the events of their kind and on each ``status`` frame:
a stream becoming live (first or again) reloads them once, which covers whatever changed
between the page's rendering and its stream's start.

A stream resumes by sequence at both ends: when the jobtask server goes away (a restart,
another replica) the console subscribes again after the last sequence it relayed; when
the browser reconnects it sends that sequence back (Last-Event-ID, or ``after``). So no
event is lost or shown twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlencode

import grpc
import grpc.aio
from google.protobuf import duration_pb2
from jobtask.v1 import events_pb2
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from server.console import words
from server.console.api import Refusal
from server.console.app import api_of, identity_of, render, signed_in, templates

logger = logging.getLogger(__name__)

HEARTBEAT = duration_pb2.Duration(seconds=5)
# Waits between attempts to subscribe again while the server is away.
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0)
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN})


def frame(event: str, data: str = "", sequence: int | None = None) -> str:
    """One server-sent event; every line of ``data`` on a ``data:`` line of its own."""
    lines = [f"event: {event}"]
    if sequence is not None:
        lines.append(f"id: {sequence}")
    lines += [f"data: {line}" for line in (data.splitlines() or [""])]
    return "\n".join(lines) + "\n\n"


def _resume_point(request: Request) -> int | None:
    """Where the browser left off: Last-Event-ID on a reconnect, else ``after``."""
    for value in (request.headers.get("last-event-id"), request.query_params.get("after")):
        if value and value.strip().isdigit():
            return int(value)
    return None


def subscription(request: Request) -> events_pb2.SubscribeRequest:
    """The Subscribe request of the stream's filters (without its resume point)."""
    query = request.query_params
    return events_pb2.SubscribeRequest(
        types=[t.strip() for t in query.getlist("type") if t.strip()],
        resource_ids=[r.strip() for r in query.getlist("resource") if r.strip()],
        job_id=query.get("job", "").strip(),
        heartbeat_interval=HEARTBEAT,
    )


def event_row(event: events_pb2.Event) -> str:
    return str(templates.get_template("_event.html").render(event=event, summary=words.event_summary(event)))


async def relay(request: Request, after: int | None) -> AsyncIterator[str]:
    """Frames for the browser, from as many subscriptions as it takes.

    ``after`` is the last sequence the browser was given; each new subscription resumes
    after it, so an event is relayed once whatever ends the streams in between. A
    ``status`` frame goes out when the state changes (live, reconnecting, waiting for a
    free stream), and a ``live`` frame each time a stream opens. A refusal ends the relay:
    a ``signin`` frame when the identity is no longer accepted, else a ``refusal`` frame;
    the page then closes its stream rather than open it again.
    """
    api, identity, asked = api_of(request), identity_of(request), subscription(request)
    yield "retry: 1000\n\n"
    attempt, shown = 0, ""

    def status(text: str) -> str:
        nonlocal shown
        changed, shown = text != shown, text
        return frame("status", text) if changed else ""

    while True:
        subscribe = events_pb2.SubscribeRequest()
        subscribe.CopyFrom(asked)
        if after is not None:
            subscribe.after_sequence = after
        call = api.stream(identity, api.events.Subscribe, subscribe)
        try:
            await call.initial_metadata()  # the server sends its headers once the stream is open
            if not call.done():  # a call refused at once ends without headers
                yield frame("live")
                if line := status("live"):
                    yield line
                attempt = 0
            async for item in call:
                if item.HasField("event"):
                    after = item.event.sequence
                    yield frame(item.event.type.split(".", 1)[0], event_row(item.event), after)
                elif after is None or item.heartbeat.sequence > after:
                    after = item.heartbeat.sequence
                    yield frame("position", "", after)
            waiting = "reconnecting to jobtask…"  # the server ended the stream
        except grpc.aio.AioRpcError as error:
            refusal = Refusal.of(error, api.target)
            if "open_streams" in refusal.details:
                waiting = refusal.message  # too many streams of this actor: wait for one to close
            elif error.code() in RETRYABLE or refusal.code in ("UNAVAILABLE", "RESOURCE_EXHAUSTED"):
                waiting = "reconnecting to jobtask…"
            elif refusal.code == "OUT_OF_RANGE" and "last_sequence" in refusal.details:
                after, said = _resume_within(after, refusal.details)
                yield frame("status", said)
                continue
            else:
                yield frame(
                    "signin" if refusal.code == "UNAUTHENTICATED" else "refusal", render_refusal(refusal)
                )
                return
        finally:
            call.cancel()
        if line := status(waiting):
            yield line
        await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
        attempt += 1


def _resume_within(after: int | None, details: Mapping[str, Any]) -> tuple[int, str]:
    """Where to go on when the log no longer holds the resume point, and the words for it."""
    last = int(details["last_sequence"])
    oldest = int(details.get("oldest_sequence", last + 1))
    if after is not None and after > last:  # a position from another log (restored, reset)
        return last, f"sequence {after} is past the end of the log ({last}): following from now"
    return oldest - 1, f"events up to {oldest - 1} are no longer kept; following from {oldest}"


def render_refusal(refusal: Refusal) -> str:
    return str(templates.get_template("_refusal.html").render(refusal=refusal))


@signed_in
async def stream(request: Request) -> Response:
    return StreamingResponse(
        relay(request, _resume_point(request)),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


@signed_in
async def events_page(request: Request) -> Response:
    query = request.query_params
    chosen: dict[str, Any] = {
        "type": query.get("type", "").strip(),
        "resource": query.get("resource", "").strip(),
        "after": query.get("after", "").strip(),
    }
    source = "/events/stream?" + urlencode([(k, v) for k, v in chosen.items() if v])
    return render(request, "events.html", chosen=chosen, source=source)


routes = [
    Route("/events", events_page),
    Route("/events/stream", stream),
]
