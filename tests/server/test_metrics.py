"""Prometheus metrics: a scripted workload, then a scrape that finds each family."""

from __future__ import annotations

import dataclasses
import re
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from jobtask.v1 import events_pb2, events_pb2_grpc, jobs_pb2, jobs_pb2_grpc

from server.config import Settings
from tests.e2e.conftest import ServerThread, auth
from tests.e2e.test_operations import free_port

OPS = auth("ops", roles=("operator",))


def scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        return response.read().decode()


def value(text: str, sample: str) -> float:
    """The value of one sample line, named with its labels exactly as exposed."""
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match, f"{sample} not in the scrape"
    return float(match.group(1))


def test_a_scrape_after_a_workload_finds_every_family(
    serve: Callable[[Settings], ServerThread], settings: Settings
) -> None:
    metrics_address = f"127.0.0.1:{free_port()}"
    server = serve(dataclasses.replace(settings, metrics_listen=metrics_address, scheduler_interval_s=0.2))
    assert server.running is not None
    with grpc.insecure_channel(f"127.0.0.1:{server.running.port}") as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)  # type: ignore[no-untyped-call]
        jobs.CreateJob(jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="a", kind="k")), metadata=OPS)
        past = jobs_pb2.Schedule()
        past.run_at.FromDatetime(datetime.now(UTC) - timedelta(seconds=5))
        jobs.CreateJob(
            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="due", kind="due", schedule=past)), metadata=OPS
        )
        with pytest.raises(grpc.RpcError) as missing:
            jobs.GetJob(jobs_pb2.GetJobRequest(id="0190d6a4-0000-7000-8000-000000000000"), metadata=OPS)
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
        lease = duration_pb2.Duration(seconds=1)
        claimed = jobs.ClaimJobs(jobs_pb2.ClaimJobsRequest(kinds=["k"], lease_duration=lease), metadata=OPS)
        assert len(claimed.jobs) == 1
        stream = events_pb2_grpc.EventServiceStub(channel).Subscribe(  # type: ignore[no-untyped-call]
            events_pb2.SubscribeRequest(after_sequence=0), metadata=OPS
        )
        assert next(stream).event.type == "job.created"
        deadline = time.monotonic() + 15
        while True:
            text = scrape(metrics_address)
            if "jobtask_lease_expiries_total 1.0" in text and 'action="promoted"' in text:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        stream.cancel()

    assert (
        value(
            text, 'jobtask_rpc_requests_total{code="OK",method="CreateJob",service="jobtask.v1.JobService"}'
        )
        == 2
    )
    assert (
        value(
            text,
            'jobtask_rpc_requests_total{code="NOT_FOUND",method="GetJob",service="jobtask.v1.JobService"}',
        )
        == 1
    )
    assert (
        value(text, 'jobtask_rpc_duration_seconds_count{method="ClaimJobs",service="jobtask.v1.JobService"}')
        == 1
    )
    assert 'jobtask_rpc_duration_seconds_bucket{le="0.005",method="CreateJob"' in text
    assert value(text, 'jobtask_events_appended_total{type="job.created"}') == 2
    assert value(text, 'jobtask_events_appended_total{type="job.lease_expired"}') == 1
    assert value(text, "jobtask_jobs_claimed_total") == 1
    assert value(text, 'jobtask_scheduler_jobs_total{action="reaped"}') == 1
    assert value(text, 'jobtask_scheduler_jobs_total{action="promoted"}') == 1
    assert value(text, "jobtask_scheduler_lateness_seconds_count") == 1
    assert value(text, "jobtask_scheduler_steps_total") >= 1
    assert value(text, "jobtask_scheduler_leader") == 1
    assert value(text, "jobtask_health_serving") == 1
    assert value(text, "jobtask_event_feed_position") >= 5
    assert value(text, "jobtask_event_streams") == 1
    assert value(text, "jobtask_event_stream_lag_max_events") >= 0
    assert value(text, "jobtask_db_pool_connections") >= 0
    assert value(text, "jobtask_db_pool_connections_in_use") >= 0
