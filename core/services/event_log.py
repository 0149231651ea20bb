"""EventLogReader: the committed event log as the event streams read it (replay, resume, tail)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from core.messaging.events import Event
from core.messaging.log import EventStore
from core.services.unit_of_work import UnitOfWorkFactory

T = TypeVar("T")


class EventLogReader:
    """Reads the log for the feed (core/messaging/feed.py): each read is a read-only unit of
    work run on ``executor``'s threads, so a stream never holds the event loop on the database."""

    def __init__(self, *, uow: UnitOfWorkFactory, executor: Executor | None = None) -> None:
        self._uow = uow
        self._executor = executor

    async def read_after(self, after_sequence: int, limit: int) -> list[Event]:
        """Committed events with a sequence above ``after_sequence``, in order."""
        return await self._read(lambda log: log.read_after(after_sequence, limit))

    async def read_tenant(self, tenant: str, after_sequence: int, through: int, limit: int) -> list[Event]:
        """Committed events of ``tenant`` in (after_sequence, through], in order."""
        return await self._read(lambda log: log.read_tenant(tenant, after_sequence, through, limit))

    async def bounds(self) -> tuple[int, int]:
        """(oldest sequence kept, last sequence assigned); (0, 0) for an empty log."""
        return await self._read(lambda log: log.bounds())

    async def _read(self, read: Callable[[EventStore], T]) -> T:
        def in_a_unit_of_work() -> T:
            with self._uow(read_only=True) as work:
                return read(work.log)

        return await asyncio.get_running_loop().run_in_executor(self._executor, in_a_unit_of_work)
