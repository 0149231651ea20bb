"""Server configuration from flags and JOBTASK_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///var/jobtask.db"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What the server needs to start."""

    database_url: str = DEFAULT_DATABASE_URL
    log_level: str = "INFO"


def from_environment(environ: dict[str, str] | None = None) -> Settings:
    """Settings read from JOBTASK_* variables, defaults elsewhere."""
    env = dict(os.environ if environ is None else environ)
    return Settings(
        database_url=env.get("JOBTASK_DATABASE_URL", DEFAULT_DATABASE_URL),
        log_level=env.get("JOBTASK_LOG_LEVEL", "INFO"),
    )
