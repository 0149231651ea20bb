"""The ``jobtask`` console script: the command groups put together."""

from __future__ import annotations

from server.cli import cli, events, jobs, tasks, worker
from server.cli.console import console

__all__ = ["cli", "main"]

for group in (jobs.jobs, tasks.tasks, events.events, worker.worker, console):
    cli.add_command(group)


def main() -> None:
    """Run the command line."""
    cli(prog_name="jobtask")


if __name__ == "__main__":
    main()
