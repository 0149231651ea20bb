"""``python -m server``: run database migrations (``migrate``)."""

from __future__ import annotations

import argparse
import logging
import sys

from modules import db
from server import config


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    settings = config.from_environment()
    parser = argparse.ArgumentParser(prog="jobtask")
    parser.add_argument("--database-url", default=settings.database_url, help="env JOBTASK_DATABASE_URL")
    parser.add_argument("--log-level", default=settings.log_level, help="env JOBTASK_LOG_LEVEL")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database schema up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "migrate":
        engine = db.make_engine(args.database_url)
        db.migrate(engine)
        print(f"migrated {engine.url.render_as_string(hide_password=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
