"""What a dashboard shows of jobs: how many are in each status, and how their runs ended
over a recent window, counted per interval."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from core.common.result import FieldViolation
from core.services.jobs.types import JobStatus, RunStatus

WINDOW_MIN: Final = timedelta(minutes=1)
WINDOW_MAX: Final = timedelta(hours=24)
BUCKET_MIN: Final = timedelta(seconds=1)
BUCKETS_MAX: Final = 1_440
DEFAULT_WINDOW: Final = timedelta(hours=1)
DEFAULT_BUCKET: Final = timedelta(minutes=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunCounts:
    """Runs that finished in ``[start, start + width)``, by outcome."""

    start: datetime
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobStats:
    """Counts as of ``as_of``: every status (zeros included) and the intervals covering the
    window, oldest first."""

    as_of: datetime
    by_status: Mapping[JobStatus, int]
    runs: tuple[RunCounts, ...]
    bucket_width: timedelta


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """The intervals a stats call counts: ``count`` of ``width`` from ``since``."""

    since: datetime
    width: timedelta
    count: int

    @classmethod
    def ending_at(cls, now: datetime, window: timedelta, width: timedelta) -> Window:
        """The intervals, aligned to whole multiples of ``width`` since the epoch, that cover
        ``(now - window, now]``."""
        since = _EPOCH + ((now - window - _EPOCH) // width) * width
        return cls(since, width, (now - since) // width + 1)

    def assemble(self, counted: Iterable[tuple[int, RunStatus, int]]) -> tuple[RunCounts, ...]:
        """Every interval, from (interval index, outcome, count) rows; rows outside are dropped."""
        totals: dict[int, dict[RunStatus, int]] = {}
        for index, outcome, count in counted:
            if 0 <= index < self.count:
                bucket = totals.setdefault(index, {})
                bucket[outcome] = bucket.get(outcome, 0) + count
        return tuple(
            RunCounts(
                start=self.since + index * self.width,
                succeeded=totals.get(index, {}).get(RunStatus.SUCCEEDED, 0),
                failed=totals.get(index, {}).get(RunStatus.FAILED, 0),
                cancelled=totals.get(index, {}).get(RunStatus.CANCELLED, 0),
            )
            for index in range(self.count)
        )


def violations(window: timedelta, width: timedelta) -> Iterator[FieldViolation]:
    """What is wrong with a window and an interval width, by request field."""
    window_ok = WINDOW_MIN <= window <= WINDOW_MAX
    if not window_ok:
        yield FieldViolation("window", "must be between 1 minute and 24 hours")
    if width < BUCKET_MIN:
        yield FieldViolation("bucket_width", "must be at least 1 second")
    elif width > WINDOW_MAX:
        yield FieldViolation("bucket_width", "must be at most 24 hours")
    elif window_ok and window / width > BUCKETS_MAX:
        yield FieldViolation("bucket_width", f"makes more than {BUCKETS_MAX:,} intervals in the window")


def all_statuses(counted: Mapping[JobStatus, int]) -> dict[JobStatus, int]:
    """``counted`` with a zero for every status it lacks, in the order of JobStatus."""
    return {status: counted.get(status, 0) for status in JobStatus}
