"""Health follows the database: NOT_SERVING when pings fail or hang, SERVING when they answer."""

from __future__ import annotations

import asyncio
import logging

import pytest
from grpc_health.v1 import health

from server.health import NOT_SERVING, SERVING, follow_database


class Database:
    def __init__(self) -> None:
        self.state = "up"

    async def ping(self) -> None:
        if self.state == "down":
            raise ConnectionError("connection refused")
        if self.state == "frozen":
            await asyncio.sleep(3600)


def test_health_follows_the_database(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[tuple[str, int, int]]:
        servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        names = ("", "jobtask.v1.JobService")
        for name in names:
            await servicer.set(name, SERVING)
        database = Database()
        watcher = asyncio.create_task(
            follow_database(database.ping, servicer, names, interval_s=0.01, timeout_s=0.05)
        )
        seen = []

        async def status_after(state: str) -> None:
            database.state = state
            await asyncio.sleep(0.3)
            statuses = [servicer._server_status[name] for name in names]
            seen.append((state, *statuses))

        for state in ("up", "down", "down", "up", "frozen", "up"):
            await status_after(state)
        watcher.cancel()
        return seen

    with caplog.at_level(logging.INFO, logger="server.health"):
        seen = asyncio.run(scenario())
    assert seen == [
        ("up", SERVING, SERVING),
        ("down", NOT_SERVING, NOT_SERVING),
        ("down", NOT_SERVING, NOT_SERVING),
        ("up", SERVING, SERVING),
        ("frozen", NOT_SERVING, NOT_SERVING),
        ("up", SERVING, SERVING),
    ]
    # One line per change, however many pings failed in between.
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING", "ERROR", "WARNING"]
