"""The README's shell blocks, run as printed against servers the test starts: the command
line session (twice in a row), the production start (on a loopback address and a temporary
SQLite file), and the grpcurl session where grpcurl is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tests.e2e.test_operations import free_port, serving

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
JOBTASK = ROOT / ".venv" / "bin" / "jobtask"


def block_after(heading: str) -> str:
    """The first ```sh block of the section under ``heading``."""
    section = README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def run(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def make_run_server(tmp_path: Path) -> str:
    """A server as `make run` starts it (header identity, SQLite), on a port of its own."""
    with serving(f"sqlite:///{tmp_path / 'readme.db'}", tmp_path / "server.log") as (_, address):
        yield address


@pytest.mark.skipif(not JOBTASK.exists(), reason=".venv/bin/jobtask is not installed: run `make test`")
def test_the_command_line_session_runs_as_printed_twice(make_run_server: str) -> None:
    script = block_after("The same with the command line")
    for _ in range(2):
        ran = run(script, JOBTASK_SERVER=make_run_server)
        assert ran.returncode == 0, ran.stderr
        assert "SUCCEEDED" in ran.stdout and "task.created" in ran.stdout


@pytest.mark.skipif(not JOBTASK.exists(), reason=".venv/bin/jobtask is not installed: run `make test`")
def test_the_production_start_line_serves(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    line = block_after("Running it for real").replace("0.0.0.0:50051", address)
    line = re.sub(r"postgresql\+psycopg://\S+", f"sqlite:///{tmp_path / 'prod.db'}", line)
    process = subprocess.Popen(
        ["bash", "-c", "exec " + line.strip()],
        cwd=ROOT,
        env={**os.environ, "SECRET": "s" * 40},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors


@pytest.mark.skipif(shutil.which("grpcurl") is None, reason="grpcurl is not installed on this machine")
def test_the_grpcurl_session_runs_as_printed(make_run_server: str) -> None:
    script = block_after("A first session with grpcurl").replace("127.0.0.1:50051", make_run_server)
    ran = run(
        script.replace(
            "jobtask.v1.JobService/StartJob   # FailedPrecondition", "jobtask.v1.JobService/StartJob || true"
        )
    )
    assert ran.returncode == 0, ran.stderr


def test_the_help_lists_the_variables() -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for variable in (
        "JOBTASK_LISTEN",
        "JOBTASK_DATABASE_URL",
        "JOBTASK_JWT_SECRET",
        "JOBTASK_METRICS_LISTEN",
    ):
        assert variable in helped.stdout
    top = subprocess.run(
        [sys.executable, "-m", "server", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    for variable in ("JOBTASK_SERVER", "JOBTASK_TOKEN", "JOBTASK_ACTOR"):
        assert variable in top.stdout
