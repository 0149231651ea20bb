"""``jobtask events watch``: follow the event stream, resuming after every disconnect."""

from __future__ import annotations

import time

import click
import grpc
from jobtask.v1 import events_pb2, events_pb2_grpc

from server.cli import Client, json_option, pass_client
from server.cli import output as out
from server.cli.output import api_failure

# Stream endings after which the client reconnects and resumes from its last sequence.
RESUMABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL}


@click.group()
def events() -> None:
    """The event stream."""


@events.command()
@click.option("--type", "types", multiple=True, help="type pattern such as 'job.*', repeatable")
@click.option("--after", type=int, help="replay from after this sequence (default: from now)")
@click.option("--job", "job_id", help="only events of this job and its tasks")
@click.option("--resource", "resource_ids", multiple=True, help="only events about this job or task")
@click.option("--count", type=int, help="stop after this many events")
@click.option("--retry-for", type=float, default=60.0, show_default=True, help="seconds to keep reconnecting")
@json_option
@pass_client
def watch(
    client: Client,
    types: tuple[str, ...],
    after: int | None,
    job_id: str | None,
    resource_ids: tuple[str, ...],
    count: int | None,
    retry_for: float,
) -> None:
    """Print each event as it arrives; reconnect and resume without gaps when the stream breaks."""
    stub = events_pb2_grpc.EventServiceStub(client.channel)  # type: ignore[no-untyped-call]
    position, seen, broken_since = after, 0, None
    while count is None or seen < count:
        request = events_pb2.SubscribeRequest(
            types=list(types), resource_ids=list(resource_ids), job_id=job_id or ""
        )
        if position is not None:
            request.after_sequence = position
        try:
            for response in client.stream(stub.Subscribe, request):
                broken_since = None
                if response.HasField("heartbeat"):
                    position = response.heartbeat.sequence
                    continue
                event = response.event
                position = event.sequence
                click.echo(out.as_json(event) if client.json_output else out.event_line(event))
                seen += 1
                if count is not None and seen >= count:
                    return
        except grpc.RpcError as error:
            code = error.code()
            if code not in RESUMABLE:
                raise api_failure(error, client.server) from None
            broken_since = broken_since or time.monotonic()
            if time.monotonic() - broken_since > retry_for:
                raise api_failure(error, client.server) from None
            click.echo(f"jobtask: stream interrupted ({code.name}); resuming after {position}", err=True)
            time.sleep(0.5)
