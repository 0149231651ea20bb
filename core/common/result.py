"""OperationResult: the value every public service method returns."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Never, TypeVar

T = TypeVar("T")
U = TypeVar("U")
T_co = TypeVar("T_co", covariant=True)


class ErrorCode(enum.StrEnum):
    """Why an operation failed; named after the gRPC status codes they map to."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One offending request field and what is wrong with it."""

    field: str
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationError:
    """The reason of a failed operation: a code, a message and structured details."""

    code: ErrorCode
    message: str
    field_violations: tuple[FieldViolation, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


class ResultError(Exception):
    """Raised when the value of a failed result is asked for: a bug in the caller."""

    def __init__(self, error: OperationError) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


@dataclass(frozen=True, slots=True)
class OperationResult(Generic[T_co]):
    """Success with a value, or failure with an OperationError; never both."""

    _value: T_co | None = None
    error: OperationError | None = None

    @property
    def ok(self) -> bool:
        """True when the operation succeeded."""
        return self.error is None

    @property
    def value(self) -> T_co:
        """The value of a success; asking a failure for it is a bug and raises."""
        if self.error is not None:
            raise ResultError(self.error)
        return self._value  # type: ignore[return-value]

    @property
    def code(self) -> ErrorCode | None:
        """The error code of a failure, None on success."""
        return None if self.error is None else self.error.code

    def map(self, transform: Callable[[T_co], U]) -> OperationResult[U]:
        """The success value passed through ``transform``; a failure unchanged."""
        if self.error is not None:
            return OperationResult(None, self.error)
        return OperationResult(transform(self._value))  # type: ignore[arg-type]

    @property
    def reason(self) -> OperationError:
        """Why the operation failed; asking a success is a bug and raises."""
        if self.error is None:
            raise ValueError("the reason of a success was asked for")
        return self.error

    def as_failure(self) -> OperationResult[Never]:
        """This failure, typed to pass through a function returning another result type."""
        if self.error is None:
            raise ValueError("as_failure() called on a success")
        return OperationResult(None, self.error)

    # -- constructors -------------------------------------------------------------

    @staticmethod
    def success(value: T) -> OperationResult[T]:
        """A successful result carrying ``value``."""
        return OperationResult(value)

    @staticmethod
    def failure(
        code: ErrorCode,
        message: str,
        *,
        field_violations: tuple[FieldViolation, ...] = (),
        **details: Any,
    ) -> OperationResult[Never]:
        """A failed result with any code."""
        return OperationResult(
            None,
            OperationError(code=code, message=message, field_violations=field_violations, details=details),
        )

    @staticmethod
    def invalid(*violations: FieldViolation) -> OperationResult[Never]:
        """INVALID_ARGUMENT naming every offending field."""
        names = ", ".join(f"{v.field}: {v.description}" for v in violations)
        return OperationResult.failure(
            ErrorCode.INVALID_ARGUMENT, f"invalid argument: {names}", field_violations=violations
        )

    @staticmethod
    def invalid_argument(field_name: str, description: str) -> OperationResult[Never]:
        """INVALID_ARGUMENT for one field."""
        return OperationResult.invalid(FieldViolation(field_name, description))

    @staticmethod
    def not_found(kind: str, resource_id: object) -> OperationResult[Never]:
        """NOT_FOUND: missing, in another tenant, or not readable by the actor."""
        return OperationResult.failure(
            ErrorCode.NOT_FOUND, f"{kind} {resource_id} not found", resource=kind, id=str(resource_id)
        )

    @staticmethod
    def denied(action: str, kind: str, resource_id: object, actor_id: str) -> OperationResult[Never]:
        """PERMISSION_DENIED: the actor may read the resource but not do ``action`` to it."""
        return OperationResult.failure(
            ErrorCode.PERMISSION_DENIED,
            f"actor {actor_id} may not {action} {kind} {resource_id}",
            action=action,
            resource=kind,
            id=str(resource_id),
        )

    @staticmethod
    def unauthenticated(message: str) -> OperationResult[Never]:
        """UNAUTHENTICATED: no valid identity."""
        return OperationResult.failure(ErrorCode.UNAUTHENTICATED, message)

    @staticmethod
    def illegal_transition(
        kind: str, resource_id: object, current: str, attempted: str
    ) -> OperationResult[Never]:
        """FAILED_PRECONDITION naming the current state and the attempted transition."""
        return OperationResult.failure(
            ErrorCode.FAILED_PRECONDITION,
            f"{kind} {resource_id} cannot go from {current} to {attempted}",
            current_state=current,
            attempted_state=attempted,
        )

    @staticmethod
    def failed_precondition(message: str, **details: Any) -> OperationResult[Never]:
        """FAILED_PRECONDITION with a free message."""
        return OperationResult.failure(ErrorCode.FAILED_PRECONDITION, message, **details)

    @staticmethod
    def aborted(kind: str, resource_id: object, expected: int, current: int | None) -> OperationResult[Never]:
        """ABORTED: a concurrent change won; the caller should re-read and retry."""
        return OperationResult.failure(
            ErrorCode.ABORTED,
            f"{kind} {resource_id} was changed concurrently (expected version {expected}, "
            f"current {current if current is not None else 'unknown'})",
            expected_version=expected,
            current_version=current,
        )

    @staticmethod
    def out_of_range(message: str, **details: Any) -> OperationResult[Never]:
        """OUT_OF_RANGE: e.g. resuming before the retention horizon."""
        return OperationResult.failure(ErrorCode.OUT_OF_RANGE, message, **details)

    @staticmethod
    def resource_exhausted(message: str, **details: Any) -> OperationResult[Never]:
        """RESOURCE_EXHAUSTED: a quota or buffer was exceeded."""
        return OperationResult.failure(ErrorCode.RESOURCE_EXHAUSTED, message, **details)

    @staticmethod
    def unavailable(message: str, **details: Any) -> OperationResult[Never]:
        """UNAVAILABLE: a dependency is down; retrying later may succeed."""
        return OperationResult.failure(ErrorCode.UNAVAILABLE, message, **details)

    @staticmethod
    def internal(message: str, **details: Any) -> OperationResult[Never]:
        """INTERNAL: an invariant broke."""
        return OperationResult.failure(ErrorCode.INTERNAL, message, **details)
