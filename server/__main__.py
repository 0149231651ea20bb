"""``python -m server``: ``serve`` the gRPC API or ``migrate`` the database.

The ``jobtask`` command (server/cli) offers the same two commands beside its client ones.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from modules import db
from server import app, config, logs
from server import processes as server_processes


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="jobtask", description="jobs and tasks over gRPC")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the gRPC server (migrates the database first)"),
        ("migrate", "bring the database schema up to date"),
    ):
        config.add_arguments(commands.add_parser(name, help=help_text))
    args = parser.parse_args(argv)
    try:
        settings = config.from_arguments(args)
        logs.configure(settings.log_level, settings.log_format)
        if args.command == "migrate":
            engine = db.make_engine(settings.database_url)
            db.migrate(engine)
            engine.dispose()
            print(f"migrated {engine.url.render_as_string(hide_password=True)}")
            return 0
        settings.check()
        processes = settings.process_count()
        if processes > 1:
            return server_processes.serve(settings, processes=processes)
        asyncio.run(app.serve(settings))
    except config.ConfigError as exc:
        print(f"jobtask: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C while draining
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
