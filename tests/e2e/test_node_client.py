"""A client in another language: Node.js with @grpc/grpc-js and @grpc/proto-loader over protos/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

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
