"""``python -m server``: the ``jobtask`` command line (server/cli): ``serve`` runs the gRPC API,
``migrate`` the database schema, the other commands are a client of a running server."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from modules import db
from server import app, config, logs
from server import processes as server_processes


def serve(settings: config.Settings) -> int:
    """Run the server (several processes where configured) until SIGTERM; the exit status."""
    # Until the server installs its own handler, a SIGHUP (a TLS reload) must not kill it.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        logs.configure(settings.log_level, settings.log_format)
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


def migrate(settings: config.Settings) -> int:
    """Bring the schema of the configured database up to date."""
    logs.configure(settings.log_level, settings.log_format)
    try:
        engine = db.make_engine(settings.database_url)
    except ValueError as exc:
        print(f"jobtask: {exc}", file=sys.stderr)
        return 2
    db.migrate(engine)
    engine.dispose()
    print(f"migrated {engine.url.render_as_string(hide_password=True)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv``; the exit status."""
    from server.cli.main import cli

    try:
        result = cli.main(args=argv, prog_name="jobtask", standalone_mode=False)
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
