"""Per-request context that travels implicitly: the correlation id and the caller's deadline."""

from __future__ import annotations

import contextvars
import time

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
# When the caller stops waiting, on the time.monotonic() clock; None when it waits forever.
deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


def set_time_remaining(seconds: float | None) -> None:
    """Record that the current call's caller waits ``seconds`` more (None: no deadline)."""
    deadline.set(None if seconds is None else time.monotonic() + seconds)


def time_remaining() -> float | None:
    """Seconds until the current call's deadline (negative once passed); None without one."""
    at = deadline.get()
    return None if at is None else at - time.monotonic()
