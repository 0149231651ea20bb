"""PostgresEventRelay: LISTEN for the NOTIFY every event-writing transaction sends on commit.

A notification is only a hint to read the log, and a lost one costs at most a poll
interval, because readers also poll the log. Its payload is the commit's notice (see
``core.services.unit_of_work.Notice``), passed on as it came.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import psycopg
from sqlalchemy import Engine

from core.common.errors import StorageUnavailableError
from core.common.failures import FailureLog
from modules.event_store.repository import CHANNEL

log = logging.getLogger(__name__)

# A commit's notice; None after (re)connecting, when anything may have happened unheard.
Notice = str | None


class PostgresEventRelay:
    """Calls each of ``listeners`` (from its own thread, in order) with the notice of every
    commit of events in any replica."""

    def __init__(
        self,
        engine: Engine,
        listeners: Sequence[Callable[[Notice], None]],
        *,
        reconnect_delay: float = 1.0,
    ) -> None:
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._listeners = tuple(listeners)
        self._reconnect_delay = reconnect_delay
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobtask-event-relay", daemon=True)
        self.listening = threading.Event()

    def start(self) -> None:
        """Start listening in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; returns once the thread has ended."""
        self._stopping.set()
        self._thread.join(timeout=5)

    def _hear(self, notice: Notice) -> None:
        for listener in self._listeners:
            listener(notice)

    def _run(self) -> None:
        failures = FailureLog(log, "the event relay's LISTEN connection")
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    failures.succeeded()
                    # Whatever committed while we were not listening is found by this read.
                    self._hear(None)
                    while not self._stopping.is_set():
                        for notice in connection.notifies(timeout=0.5):
                            self._hear(notice.payload)
            except psycopg.Error as error:
                self.listening.clear()
                failures.failed(StorageUnavailableError(str(error).strip() or type(error).__name__))
                self._stopping.wait(self._reconnect_delay)
