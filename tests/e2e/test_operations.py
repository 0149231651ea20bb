"""Operating the server: reflection without proto files, health, SIGTERM drain, the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

ROOT = Path(__file__).resolve().parents[2]


def test_reflection_lists_and_describes_the_services_with_no_proto_files(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    services = set(database.get_services())
    assert {"jobtask.v1.JobService", "jobtask.v1.TaskService", "grpc.health.v1.Health"} <= services
    described = database.FindFileContainingSymbol("jobtask.v1.JobService")
    assert "StartJob" in [m.name for m in described.service[0].method]
    events = database.FindFileContainingSymbol("jobtask.v1.Event")
    assert events.name == "jobtask/v1/events.proto"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(database_url: str, log: Path, *flags: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python -m server serve`` with header identity on a free loopback port, ``flags``
    added, its output in ``log``; yields the process and its address once it answers."""
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "JOBTASK_DATABASE_URL": database_url, "JOBTASK_LOG_FORMAT": "text"}
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--auth-mode", "headers", "--listen", address, *flags],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=output,
        )
        try:
            with grpc.insecure_channel(address) as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
            yield process, address
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=30)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m server serve`` in a process of its own, with header identity on loopback."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "JOBTASK_DATABASE_URL": f"sqlite:///{tmp_path / 'proc.db'}",
        "JOBTASK_LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "serve",
            "--auth-mode",
            "headers",
            "--listen",
            address,
            "--grace-period",
            "3",
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
    yield process, address
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    if process.stderr:
        process.stderr.close()


def test_sigterm_reports_not_serving_then_exits_cleanly(
    server_process: tuple[subprocess.Popen[str], str],
) -> None:
    process, address = server_process
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service="jobtask.v1.JobService"), timeout=20)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert process.wait(timeout=15) == 0
        assert time.monotonic() - started < 10
    assert process.stderr is not None
    logged = process.stderr.read()
    assert '"message": "jobtask listening on 127.0.0.1:' in logged
    assert '"message": "stopped"' in logged


def test_sigterm_ends_event_streams_with_unavailable(
    server_process: tuple[subprocess.Popen[str], str],
) -> None:
    from jobtask.v1 import events_pb2, events_pb2_grpc

    from server.errors import operation_result_of

    process, address = server_process
    identity = [("x-actor-id", "ops"), ("x-actor-tenant", "acme"), ("x-actor-roles", "operator")]
    with grpc.insecure_channel(address) as channel:
        stub = events_pb2_grpc.EventServiceStub(channel)
        request = events_pb2.SubscribeRequest(
            after_sequence=0, heartbeat_interval=Duration(nanos=100_000_000)
        )
        stream = stub.Subscribe(request, metadata=identity, timeout=20)
        assert next(stream).HasField("heartbeat")  # the stream is live
        process.send_signal(signal.SIGTERM)
        with pytest.raises(grpc.RpcError) as raised:
            for _ in stream:
                pass
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    result = operation_result_of(raised.value)
    assert result is not None
    assert "reconnect and resume" in result.message
    assert process.wait(timeout=15) == 0
