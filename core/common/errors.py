"""Exceptions crossing from storage into core; expected failures are results, not these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Never, TypeVar

from core.common.result import ErrorCode, OperationResult

T = TypeVar("T")

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


class storage_guard:
    """Turns the storage errors a change can meet into a failed result (ABORTED, UNAVAILABLE).

    Use ``with storage_guard("job", job_id) as guard: ...`` then ``return guard.result``
    after the block: it is reached only when an error was translated.
    """

    def __init__(self, kind: str, resource_id: object) -> None:
        self._kind = kind
        self._resource_id = resource_id
        self.result: OperationResult[Never] = OperationResult.internal("no storage error was translated")

    def __enter__(self) -> storage_guard:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, StaleVersionError):
            self.result = OperationResult.aborted(self._kind, self._resource_id, exc.expected, exc.current)
        elif isinstance(exc, ConcurrencyError):
            self.result = OperationResult.failure(
                ErrorCode.ABORTED,
                f"{self._kind} {self._resource_id}: conflicting concurrent transaction, retry",
            )
        elif isinstance(exc, StorageUnavailableError):
            self.result = OperationResult.unavailable(f"storage unavailable: {exc}")
        else:
            return False
        return True


def guarded_change(
    kind: str, resource_id: object, attempt: Callable[[], OperationResult[T]], *, unconditional: bool
) -> OperationResult[T]:
    """Run ``attempt`` (one unit of work) under storage_guard.

    A call that named no version did not ask to be guarded against concurrent changes
    (a reaction bumping a counter, another replica): a lost race (ABORTED) is tried again
    on the resource as it now is, a few times; one that named a version fails at once.
    """
    tries = UNCONDITIONAL_ATTEMPTS if unconditional else 1
    for _ in range(tries):
        with storage_guard(kind, resource_id) as guard:
            return attempt()
        error = guard.result.error
        if error is None or error.code is not ErrorCode.ABORTED:
            break
    return guard.result
