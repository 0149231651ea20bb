"""Exceptions crossing from storage into core; expected failures are results, not these."""

from __future__ import annotations

from typing import Never

from core.common.result import ErrorCode, OperationResult


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
