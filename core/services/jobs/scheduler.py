"""The scheduler: makes schedules and retries happen by promoting due jobs to PENDING, and
takes jobs back from workers whose lease lapsed (the reaper).

Exactly one scheduler acts at a time across replicas: each step first makes sure it
holds the leader lock (on PostgreSQL a lease with a deadline and a fencing token, renewed
each step, so a stalled leader is replaced once its lease runs out and its late promotions
are refused; a file lock beside a SQLite database). A job that fell due while no
scheduler ran fires once when one starts; missed recurrences are not replayed, because the
next fire time of a recurring job is computed from the moment its run finishes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from core.services.jobs.service import JobService
from core.services.jobs.types import Job
from core.services.unit_of_work import Fence

log = logging.getLogger(__name__)


class LeaderLock(Protocol):
    """Leadership among schedulers: at most one holder at a time."""

    def try_acquire(self) -> bool:
        """True when this holder leads (acquiring the lock if it is free)."""
        ...

    def release(self) -> None:
        """Give up leadership."""
        ...

    def fence(self) -> Fence | None:
        """A check, run inside each promotion's transaction, that leadership still holds
        (a lease with a token); None where holding the lock is proof enough."""
        ...


class Scheduler:
    """Promotes due jobs and reaps lapsed leases while it holds the leader lock."""

    def __init__(self, *, jobs: JobService, lock: LeaderLock, batch_size: int = 100) -> None:
        self._jobs = jobs
        self._lock = lock
        self._batch_size = batch_size
        self.leading = False

    def tick(self) -> list[Job]:
        """One step: promote every job due now, then fail (or cancel) every job whose run's
        lease lapsed, in batches; the jobs it moved. Nothing unless leading."""
        leading = self._lock.try_acquire()
        if leading != self.leading:
            log.info("scheduler %s leadership", "took" if leading else "lost")
            self.leading = leading
        if not leading:
            return []
        fence = self._lock.fence()
        moved = self._batches(lambda: self._jobs.promote_due_jobs(limit=self._batch_size, fence=fence))
        reaped = self._batches(lambda: self._jobs.reap_expired_leases(limit=self._batch_size, fence=fence))
        if reaped:
            log.warning("reaped %d jobs whose worker's lease lapsed", len(reaped))
        return moved + reaped

    def _batches(self, step: Callable[[], list[Job]]) -> list[Job]:
        done: list[Job] = []
        while True:
            batch = step()
            done += batch
            if len(batch) < self._batch_size:
                return done

    def stop(self) -> None:
        """Release leadership so another replica can take over at once."""
        if self.leading:
            self._lock.release()
            self.leading = False
