"""``jobtask worker --kind K -- CMD ARGS...``: run a command for every job of a kind."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
from datetime import timedelta
from typing import Any

import click

from server.cli import Client, parse_labels, pass_client
from server.worker import ERROR_TAIL, JobContext, JobFailed, Worker

# What of a command's output becomes the job's result message.
OUTPUT_TAIL = 4_000


class CommandHandler:
    """Runs ``command`` for a job: the payload as JSON on stdin and in JOBTASK_PAYLOAD, the job
    in JOBTASK_JOB_ID, JOBTASK_RUN_ID, JOBTASK_JOB_KIND and JOBTASK_ATTEMPT. Exit status 0
    completes the job (stdout, when it is a JSON object, is the result's data, otherwise
    its message); another fails it with the status and the end of stderr. A cancelled
    job's command gets SIGTERM, then SIGKILL after ``kill_after`` seconds."""

    def __init__(self, command: tuple[str, ...], *, kill_after: float) -> None:
        self.command = command
        self.kill_after = kill_after

    def __call__(self, job: JobContext) -> Any:
        payload = json.dumps(job.payload)
        env = {
            **os.environ,
            "JOBTASK_JOB_ID": job.id,
            "JOBTASK_RUN_ID": job.run_id,
            "JOBTASK_JOB_KIND": job.job.kind,
            "JOBTASK_ATTEMPT": str(job.job.attempt_count),
            "JOBTASK_PAYLOAD": payload,
        }
        process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            errors="replace",
            # Its own process group: a Ctrl-C or a service manager's signal to the worker's
            # group does not reach the command; the worker lets it finish.
            start_new_session=True,
        )
        job.on_cancel(lambda: self._terminate(process))
        stdout, stderr = process.communicate(payload)
        if process.returncode != 0:
            status = (
                f"killed by signal {-process.returncode}"
                if process.returncode < 0
                else f"exit status {process.returncode}"
            )
            tail = stderr.replace("\x00", "").strip()[-ERROR_TAIL:]
            raise JobFailed(f"{status}: {tail}" if tail else status)
        return _result(stdout)

    def _terminate(self, process: subprocess.Popen[str]) -> None:
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)

        def kill() -> None:
            if process.poll() is None:
                process.kill()

        timer = threading.Timer(self.kill_after, kill)
        timer.daemon = True
        timer.start()


def _result(stdout: str) -> tuple[dict[str, Any], str]:
    text = stdout.replace("\x00", "").strip()
    try:
        parsed = json.loads(text) if text else None
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed, ""
    return {}, text[-OUTPUT_TAIL:]


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--kind", "kinds", multiple=True, required=True, help="a job kind to run (repeatable)")
@click.option("--concurrency", type=click.IntRange(1, 100), default=1, show_default=True, help="jobs at once")
@click.option("--lease", type=click.FloatRange(1, 3600), default=30.0, show_default=True, help="seconds")
@click.option(
    "--wait", type=click.FloatRange(0, 60), default=20.0, show_default=True, help="long poll, seconds"
)
@click.option("--label", "labels", multiple=True, help="only jobs with this KEY=VALUE label (repeatable)")
@click.option("--worker-id", help="shown on the runs it holds [default: host:pid]")
@click.option("--kill-after", type=float, default=10.0, show_default=True, help="SIGTERM to SIGKILL, seconds")
@click.argument("command", nargs=-1, required=True)
@pass_client
def worker(
    client: Client,
    kinds: tuple[str, ...],
    concurrency: int,
    lease: float,
    wait: float,
    labels: tuple[str, ...],
    worker_id: str | None,
    kill_after: float,
    command: tuple[str, ...],
) -> None:
    """Claim jobs of --kind and run COMMAND for each (put it after --).

    The payload arrives as JSON on stdin; exit status 0 completes the job, another
    fails it (retried per its policy). SIGTERM stops claiming, lets running jobs finish,
    and exits. The actor needs the worker (or operator) role.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runner = Worker(
        client.channel,
        metadata=client.metadata(),
        worker_id=worker_id,
        concurrency=concurrency,
        lease=timedelta(seconds=lease),
        poll_wait=timedelta(seconds=wait),
        labels=parse_labels(labels),
        call_timeout=client.timeout,
    )
    handler = CommandHandler(command, kill_after=kill_after)
    for kind in kinds:
        runner.handler(kind)(handler)
    runner.run_until_signalled()
    click.echo(f"worker {runner.worker_id}: {runner.completed} completed, {runner.failed} failed", err=True)
