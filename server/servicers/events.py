"""EventServicer: Subscribe, a server stream fed by the process's EventFeed."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import grpc
from jobtask.v1 import events_pb2, events_pb2_grpc

from core.common.result import OperationResult
from core.messaging.events import Event
from core.messaging.feed import EventFeed, Heartbeat, StreamEnded
from server import auth
from server.conversions import events as convert
from server.conversions.common import InvalidRequest, from_duration
from server.errors import rich_status

MIN_HEARTBEAT_S, MAX_HEARTBEAT_S = 0.05, 3600.0
# How long a write may wait for a client that reads nothing before its stream is ended.
DEFAULT_STALL_S = 30.0
# Responses kept by sequence, so an event fanned out to many streams is converted once.
RESPONSE_CACHE = 4096


class EventServicer(events_pb2_grpc.EventServiceServicer):
    """Streams events to one subscriber per call."""

    def __init__(
        self,
        *,
        feed: EventFeed,
        authenticator: auth.Authenticator,
        heartbeat_s: float,
        stall_s: float = DEFAULT_STALL_S,
    ) -> None:
        self._feed = feed
        self._authenticator = authenticator
        self._heartbeat_s = heartbeat_s
        self._stall_s = stall_s
        self._responses: OrderedDict[int, events_pb2.SubscribeResponse] = OrderedDict()

    async def Subscribe(
        self, request: events_pb2.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """Write the stream's responses as the client takes them; a client that takes none
        for ``stall_s`` (its flow-control window full) is ended with RESOURCE_EXHAUSTED and
        the last sequence it was sent, so it can resume from there."""
        actor = auth.current_actor.get() or self._authenticator.authenticate(context.invocation_metadata())
        try:
            wanted = convert.filter_from_proto(request)
            heartbeat = self._heartbeat(request)
        except InvalidRequest as exc:
            await _end(context, OperationResult.invalid(exc.violation).error)
            return
        after = request.after_sequence if request.HasField("after_sequence") else None
        # Headers go out at once, so a client can tell the stream is open before any event.
        await context.send_initial_metadata(())
        sent = after or 0
        try:
            async for item in self._feed.subscribe(actor, wanted, after_sequence=after, heartbeat=heartbeat):
                if isinstance(item, Heartbeat):
                    response = convert.heartbeat_to_proto(item.sequence, datetime.now(UTC))
                else:
                    response = self._response(item)
                try:
                    async with asyncio.timeout(self._stall_s):
                        await context.write(response)
                except TimeoutError:
                    stalled = OperationResult.resource_exhausted(
                        f"the client read nothing for {self._stall_s:g}s; resume after the last "
                        f"sequence received (the last fully sent was {sent})",
                        last_sequence=sent,
                    )
                    await _end(context, stalled.error)
                    return
                sent = item.sequence
        except StreamEnded as ended:
            await _end(context, ended.error)

    def _response(self, event: Event) -> events_pb2.SubscribeResponse:
        """The response carrying ``event``, converted once for every stream that sends it."""
        response = self._responses.get(event.sequence)
        if response is None:
            response = events_pb2.SubscribeResponse(event=convert.event_to_proto(event))
            self._responses[event.sequence] = response
            if len(self._responses) > RESPONSE_CACHE:
                self._responses.popitem(last=False)
        return response

    def _heartbeat(self, request: events_pb2.SubscribeRequest) -> float:
        if not request.HasField("heartbeat_interval"):
            return self._heartbeat_s
        seconds = from_duration(request.heartbeat_interval, "heartbeat_interval").total_seconds()
        if not MIN_HEARTBEAT_S <= seconds <= MAX_HEARTBEAT_S:
            raise InvalidRequest(
                "heartbeat_interval", f"must be between {MIN_HEARTBEAT_S}s and {MAX_HEARTBEAT_S:.0f}s"
            )
        return seconds


async def _end(context: grpc.aio.ServicerContext[Any, Any], error: Any) -> None:
    status = rich_status(error)
    await context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)
