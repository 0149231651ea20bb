"""A client in another language: Node.js with @grpc/grpc-js and @grpc/proto-loader over protos/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc

from tests.e2e.conftest import ServerThread, mint

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed on this machine")
def test_the_node_client_drives_jobs_tasks_events_and_reads_rich_errors(
    server: ServerThread, channel: grpc.Channel
) -> None:
    if not (ROOT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("node_modules is missing: `make test` installs it with `npm ci`")
    assert server.running is not None and NODE is not None
    env = {**os.environ, "JOBTASK_TOKEN": mint("node", roles=("operator",))}
    finished = subprocess.run(
        [NODE, str(ROOT / "tests" / "node" / "client.mjs"), f"127.0.0.1:{server.running.port}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert report["job_status"] == "JOB_STATUS_SUCCEEDED"
    assert report["events"] == [
        "job.created",
        "job.started",
        "job.status_changed",
        "job.succeeded",
        "job.status_changed",
        "task.created",
        "task.created",
        "task.created",
        "task.assigned",
        "task.completed",
        "task.status_changed",
        "task.completed",
        "task.status_changed",
        "task.completed",
        "task.status_changed",
    ]
    refusal = report["refusal"]
    assert refusal["code"] == "FAILED_PRECONDITION"
    assert refusal["result"]["code"] == "ERROR_CODE_FAILED_PRECONDITION"
    assert "open subtask" in refusal["result"]["message"]
    missing = report["missing"]
    assert missing["code"] == "NOT_FOUND"
    assert missing["result"]["code"] == "ERROR_CODE_NOT_FOUND"
    assert missing["result"]["message"].endswith("not found")


def run_docs_example(name: str, server: ServerThread, token: str, **env: str) -> str:
    """Run the ``<!-- name -->`` block of docs/client-authors.md as it stands, against
    ``server``; its standard output."""
    if not (ROOT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("node_modules is missing: `make test` installs it with `npm ci`")
    assert server.running is not None and NODE is not None
    docs = (ROOT / "docs" / "client-authors.md").read_text()
    code = docs.split(f"<!-- {name} -->\n```js\n", 1)[1].split("```", 1)[0]
    # Inside node_modules/ so that the script finds @grpc/grpc-js as a file there would.
    script = ROOT / "node_modules" / ".cache" / f"jobtask-docs-{name}"
    script.parent.mkdir(exist_ok=True)
    script.write_text(code)
    environment = {
        **os.environ,
        "JOBTASK_SERVER": f"127.0.0.1:{server.running.port}",
        "JOBTASK_TOKEN": token,
        "JOBTASK_PROTOS": str(ROOT / "protos"),
        **env,
    }
    finished = subprocess.run(
        [NODE, str(script)], capture_output=True, text=True, env=environment, timeout=60, check=False
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


@pytest.mark.skipif(NODE is None, reason="node is not installed on this machine")
def test_the_node_worker_of_the_client_docs_claims_and_completes(
    server: ServerThread, channel: grpc.Channel
) -> None:
    """The worker loop printed in docs/client-authors.md, run as it stands."""
    jobs = jobs_pb2_grpc.JobServiceStub(channel)  # type: ignore[no-untyped-call]
    owner = [("authorization", f"Bearer {mint('ann', roles=('member',))}")]
    created = [
        jobs.CreateJob(
            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name=f"n{n}", kind="node.echo")), metadata=owner
        ).job
        for n in range(2)
    ]
    token = mint("node-worker", roles=("worker",))
    run_docs_example("worker.mjs", server, token, JOBTASK_KINDS="node.echo", JOBTASK_JOBS="2")
    for job in created:
        done = jobs.GetJob(jobs_pb2.GetJobRequest(id=job.id), metadata=owner).job
        assert done.status == jobs_pb2.JOB_STATUS_SUCCEEDED
        assert done.result.message == f"{job.name} done by node"
        runs = jobs.ListJobRuns(jobs_pb2.ListJobRunsRequest(job_id=job.id), metadata=owner).runs
        assert runs[0].worker_id.startswith("node:")


@pytest.mark.skipif(NODE is None, reason="node is not installed on this machine")
def test_the_node_error_decoding_of_the_client_docs_reads_the_operation_result(server: ServerThread) -> None:
    """The decoding example printed in docs/client-authors.md, run as it stands."""
    report = json.loads(run_docs_example("errors.mjs", server, mint("node", roles=("member",))))
    assert report["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v["field"] for v in report["violations"]] == ["job.schedule.cron.time_zone"]
