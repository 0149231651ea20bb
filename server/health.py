"""Health that follows the database: NOT_SERVING within seconds of losing it, SERVING again
when it answers; each change logged once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from grpc_health.v1 import health_pb2

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def follow_database(
    ping: Callable[[], Awaitable[None]],
    health: Any,
    names: Sequence[str],
    *,
    interval_s: float = 2.0,
    timeout_s: float = 3.0,
    report: Callable[[bool], None] | None = None,
) -> None:
    """Ping every ``interval_s``; a ping that fails or takes over ``timeout_s`` means the
    database is lost; ``report`` hears each change. Runs until cancelled."""
    serving = True
    while True:
        await asyncio.sleep(interval_s)
        try:
            async with asyncio.timeout(timeout_s):
                await ping()
            reachable, reason = True, ""
        except Exception as exc:  # any failure to answer is the same news for an orchestrator
            reachable, reason = False, str(exc) or type(exc).__name__
        if reachable == serving:
            continue
        serving = reachable
        if report is not None:
            report(serving)
        if serving:
            log.warning("the database answers again: health is SERVING")
        else:
            log.error("the database does not answer (%s): health is NOT_SERVING", reason)
        for name in names:
            await health.set(name, SERVING if serving else NOT_SERVING)
