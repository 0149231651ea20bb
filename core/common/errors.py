"""Exceptions crossing from storage into core; expected failures are results, not these."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from core.common.result import ErrorCode, OperationResult

T = TypeVar("T")
log = logging.getLogger(__name__)

# How often a change that names no version is tried when a concurrent change wins the race.
UNCONDITIONAL_ATTEMPTS = 5


class StorageError(Exception):
    """Base of the errors a repository raises after translating a driver error."""


class StaleVersionError(StorageError):
    """A save named a version that is no longer current."""

    def __init__(self, kind: str, resource_id: object, expected: int, current: int | None) -> None:
        super().__init__(f"{kind} {resource_id}: expected version {expected}, current {current}")
        self.kind = kind
        self.resource_id = resource_id
        self.expected = expected
        self.current = current


class ConflictError(StorageError):
    """A uniqueness constraint refused a write; ``constraint`` names it."""

    def __init__(self, constraint: str, message: str = "") -> None:
        super().__init__(message or f"constraint {constraint} violated")
        self.constraint = constraint


class ConcurrencyError(StorageError):
    """The database aborted the transaction (deadlock, serialization failure); retryable."""


class StorageUnavailableError(StorageError):
    """The database cannot be reached."""


def guarded(kind: str, resource_id: object, work: Callable[[], OperationResult[T]]) -> OperationResult[T]:
    """``work()``, with the storage errors it meets turned into failed results: a stale
    version or a conflicting transaction is ABORTED (retryable), a lost database
    UNAVAILABLE. The one policy for storage failures of every service call, read or
    write; any other exception is a bug and passes through."""
    try:
        return work()
    except StaleVersionError as exc:
        return OperationResult.aborted(kind, resource_id, exc.expected, exc.current)
    except ConcurrencyError as exc:
        # The driver's words stay in the log: they may name hosts and internals.
        log.warning("%s: a concurrent transaction won: %s", kind, exc)
        what = kind if resource_id is None else f"{kind} {resource_id}"
        return OperationResult.failure(ErrorCode.ABORTED, f"{what}: a concurrent change interfered; retry")
    except StorageUnavailableError as exc:
        log.warning("%s: storage unavailable: %s", kind, exc)
        return OperationResult.unavailable("the database is unavailable; retry shortly")


def guarded_change(
    kind: str, resource_id: object, attempt: Callable[[], OperationResult[T]], *, unconditional: bool
) -> OperationResult[T]:
    """Run ``attempt`` (one unit of work), guarded.

    A call that named no version did not ask to be guarded against concurrent changes
    (a reaction bumping a counter, another replica): a lost race (ABORTED) is tried again
    on the resource as it now is, a few times; one that named a version fails at once.
    """
    tries = UNCONDITIONAL_ATTEMPTS if unconditional else 1
    for _ in range(tries):
        result = guarded(kind, resource_id, attempt)
        if result.code is not ErrorCode.ABORTED:
            break
    return result
