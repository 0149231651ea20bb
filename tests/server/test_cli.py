"""The jobtask command line against a real server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner, Result

from server.app import build_application, start_server
from server.cli.main import cli
from server.config import Settings
from tests.e2e.conftest import SECRET, ServerThread
from tests.e2e.test_operations import free_port

ROOT = Path(__file__).resolve().parents[2]
WATCH_FOUR = ["events", "watch", "--after", "0", "--count", "4"]


@pytest.fixture
def address(server: ServerThread) -> str:
    assert server.running is not None
    return f"127.0.0.1:{server.running.port}"


def mint(*args: str) -> str:
    result = CliRunner().invoke(cli, ["token", "mint", *args, "--secret", SECRET])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@pytest.fixture
def run(address: str) -> object:
    operator = mint("--actor", "ops", "--tenant", "acme", "--roles", "operator")

    def invoke(*args: str, token: str | None = operator) -> Result:
        options = ["--server", address] + (["--token", token] if token else [])
        return CliRunner().invoke(cli, [*options, *args])

    return invoke


def json_of(result: Result) -> dict[str, object]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_token_mint_signs_the_claims() -> None:
    claims = jwt.decode(
        mint("--actor", "ann", "--tenant", "acme", "--roles", "member,viewer", "--ttl", "60"),
        SECRET,
        algorithms=["HS256"],
    )
    assert (claims["sub"], claims["tenant"], claims["roles"]) == ("ann", "acme", ["member", "viewer"])


def test_create_list_complete_and_watch_the_events(run: object) -> None:
    created = json_of(
        run("--json", "jobs", "create", "--name", "nightly", "--kind", "report", "--label", "team=data")
    )
    job_id = str(created["id"])
    listing = run("jobs", "list", "--label", "team=data")
    assert listing.exit_code == 0
    assert job_id in listing.stdout
    assert "PENDING" in listing.stdout
    assert json_of(run("jobs", "start", job_id, "--json"))["status"] == "JOB_STATUS_RUNNING"
    done = run("jobs", "complete", job_id, "--result", '{"rows": 3}', "--message", "ok")
    assert "SUCCEEDED" in done.stdout
    runs = run("jobs", "runs", job_id)
    assert "SUCCEEDED" in runs.stdout
    counted = json_of(run("jobs", "stats", "--window", "30", "--bucket", "15", "--json"))
    assert {"status": "JOB_STATUS_SUCCEEDED", "count": "1"} in counted["status_counts"]  # type: ignore[index]
    assert sum(int(b.get("succeeded", 0)) for b in counted["run_counts"]) == 1  # type: ignore[index]
    assert "SUCCEEDED" in run("jobs", "stats").stdout
    watched = run("events", "watch", "--after", "0", "--count", "5", "--type", "job.*")
    assert watched.exit_code == 0, watched.output
    lines = watched.stdout.strip().splitlines()
    assert [line.split()[2] for line in lines] == [
        "job.created",
        "job.started",
        "job.status_changed",
        "job.succeeded",
        "job.status_changed",
    ]
    assert lines[0].startswith("#1 ")


def test_claim_heartbeat_and_finish_by_run(run: object) -> None:
    job_id = str(json_of(run("--json", "jobs", "create", "--name", "n", "--kind", "report"))["id"])
    assert json_of(run("jobs", "claim", "--kind", "other", "--json")) == {}
    claimed = run("jobs", "claim", "--kind", "report", "--lease", "60", "--worker-id", "box:1")
    assert claimed.exit_code == 0, claimed.output
    assert job_id in claimed.stdout
    run_id = json_of(run("jobs", "runs", job_id, "--json"))["runs"][0]["id"]  # type: ignore[index]

    beat = run("jobs", "heartbeat", job_id, "--run-id", run_id, "--progress", "40", "--message", "half")
    assert beat.exit_code == 0, beat.output
    assert "no" in beat.stdout
    shown = run("jobs", "get", job_id)
    assert "40% half" in shown.stdout
    assert "box:1" in run("jobs", "runs", job_id).stdout

    refused = run("jobs", "complete", job_id)
    assert refused.exit_code != 0 and "name its run_id" in refused.output
    assert "cancellation requested" in run("jobs", "cancel", job_id).stdout
    assert json_of(run("jobs", "heartbeat", job_id, "--run-id", run_id, "--json"))["cancel_requested"] is True
    ended = run("jobs", "fail", job_id, "--run-id", run_id, "--error", "stopped")
    assert "CANCELLED" in ended.stdout


def test_tasks_update_changes_the_given_fields(run: object) -> None:
    task = json_of(run("--json", "tasks", "create", "--title", "Draft"))
    task_id = str(task["id"])
    updated = json_of(
        run(
            "--json",
            "tasks",
            "update",
            task_id,
            "--title",
            "Final",
            "--status",
            "in_progress",
            "--priority",
            "high",
        )
    )
    assert (updated["title"], updated["status"], updated["priority"]) == (
        "Final",
        "TASK_STATUS_IN_PROGRESS",
        "TASK_PRIORITY_HIGH",
    )
    nothing = run("tasks", "update", task_id)
    assert nothing.exit_code != 0 and "nothing to update" in nothing.output


def test_tasks_commands_and_the_tree(run: object) -> None:
    root = json_of(run("--json", "tasks", "create", "--title", "Release", "--priority", "high"))
    child = json_of(run("--json", "tasks", "create", "--title", "Notes", "--parent", str(root["id"])))
    run("tasks", "create", "--title", "Proofread", "--parent", str(child["id"]))
    assigned = json_of(run("--json", "tasks", "assign", str(child["id"]), "carl"))
    assert assigned["assignee"] == "carl"
    tree = run("tasks", "tree", str(root["id"]))
    assert tree.exit_code == 0
    assert [line.strip("│├└─ ").split(" [")[0] for line in tree.stdout.splitlines()] == [
        "Release",
        "Notes",
        "Proofread",
    ]
    assert "carl" in tree.stdout
    subtasks = run("tasks", "subtasks", str(root["id"]))
    assert "Notes" in subtasks.stdout
    assert "Proofread" not in subtasks.stdout
    failed = run("tasks", "complete", str(root["id"]))
    assert failed.exit_code == 19
    assert failed.stderr.startswith("jobtask: FAILED_PRECONDITION: task ")
    run("tasks", "cancel", str(root["id"]), "--reason", "dropped")
    assert json_of(run("--json", "tasks", "get", str(child["id"])))["status"] == "TASK_STATUS_CANCELLED"
    assert "OPEN" in run("tasks", "reopen", str(child["id"])).stdout
    listed = run("tasks", "list", "--status", "cancelled")
    assert str(root["id"]) in listed.stdout


@pytest.mark.parametrize(
    ("args", "code", "name"),
    [
        (["jobs", "get", "01a22205-df42-71d0-9cb9-aa147483dbae"], 15, "NOT_FOUND"),
        (["jobs", "get", "nope"], 13, "INVALID_ARGUMENT"),
        (["jobs", "create", "--name", " ", "--kind", "k"], 13, "INVALID_ARGUMENT"),
        (["jobs", "list", "--page-token", "junk"], 13, "INVALID_ARGUMENT"),
    ],
)
def test_errors_are_one_line_and_a_non_zero_exit(run: object, args: list[str], code: int, name: str) -> None:
    result = run(*args)
    assert result.exit_code == code
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"jobtask: {name}: ")


def test_permission_precondition_and_version_errors(run: object) -> None:
    job_id = str(json_of(run("--json", "jobs", "create", "--name", "n", "--kind", "k"))["id"])
    viewer = mint("--actor", "vic", "--tenant", "acme", "--roles", "viewer")
    denied = run("jobs", "start", job_id, token=viewer)
    assert (denied.exit_code, denied.stderr.split(":")[1].strip()) == (17, "PERMISSION_DENIED")
    stale = run("jobs", "update", job_id, "--name", "x", "--etag", "7")
    assert (stale.exit_code, stale.stderr.split(":")[1].strip()) == (20, "ABORTED")
    refused = run("jobs", "complete", job_id)
    assert (refused.exit_code, refused.stderr.split(":")[1].strip()) == (19, "FAILED_PRECONDITION")


def test_identity_problems(run: object, address: str) -> None:
    nobody = run("jobs", "list", token=None)
    assert nobody.exit_code == 2
    assert "no identity" in nobody.output
    forged = run(
        "jobs", "list", token=jwt.encode({"sub": "x", "tenant": "t", "exp": 2**31}, "wrong-secret" * 4)
    )
    assert (forged.exit_code, forged.stderr.split(":")[1].strip()) == (26, "UNAUTHENTICATED")
    headers = CliRunner().invoke(
        cli, ["--server", address, "--actor", "ann", "--tenant", "acme", "--roles", "admin", "jobs", "list"]
    )
    assert headers.exit_code == 26  # this server authenticates tokens, not identity headers


def test_an_unreachable_server(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--server", "127.0.0.1:1", "--actor", "a", "--tenant", "t", "jobs", "list"]
    )
    assert result.exit_code == 24
    assert result.stderr == "jobtask: UNAVAILABLE: cannot reach jobtask at 127.0.0.1:1\n"


def test_bad_options_are_usage_errors(run: object) -> None:
    assert run("jobs", "create", "--name", "n", "--kind", "k", "--payload", "[1]").exit_code == 2
    assert run("jobs", "create", "--name", "n", "--kind", "k", "--label", "novalue").exit_code == 2
    assert (
        run("jobs", "create", "--name", "n", "--kind", "k", "--cron", "* * * * *", "--every", "5").exit_code
        == 2
    )
    assert run("jobs", "update", "01a22205-df42-71d0-9cb9-aa147483dbae").exit_code == 2


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("jobtask")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True, cwd=ROOT)
    for command in ("serve", "migrate", "jobs", "tasks", "events", "token"):
        assert command in result.stdout


def test_events_watch_resumes_after_the_server_restarts(settings: Settings) -> None:
    """The watcher (a real jobtask process) sees every event once across a server restart."""
    listen = f"127.0.0.1:{free_port()}"
    fixed = dataclasses.replace(settings, listen=listen)
    token = mint("--actor", "ops", "--tenant", "acme", "--roles", "operator")
    first = started(fixed)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "server.cli.main", "--server", listen, "--token", token, *WATCH_FOUR],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def create(name: str) -> None:
        result = CliRunner().invoke(
            cli, ["--server", listen, "--token", token, "jobs", "create", "--name", name, "--kind", "k"]
        )
        assert result.exit_code == 0, result.output

    create("before-1")
    create("before-2")
    first.stop()
    second = started(fixed)
    try:
        create("after-1")
        create("after-2")
        out, err = watcher.communicate(timeout=60)
    finally:
        second.stop()
    assert watcher.returncode == 0, err
    names = [line.split()[4] for line in out.strip().splitlines()]
    assert names == ["before-1", "before-2", "after-1", "after-2"]


def started(settings: Settings) -> ServerThread:
    server = ServerThread(settings)
    server.thread.start()
    server.app = build_application(settings)
    server.running = server.run(start_server(server.app))
    return server


def test_watching_from_outside_the_log_is_out_of_range(run: object) -> None:
    result = run("events", "watch", "--after", "999999")
    assert result.exit_code == 21
    assert (
        result.stderr == "jobtask: OUT_OF_RANGE: after_sequence 999999 is outside the log (last sequence 0)\n"
    )
