"""Per-request context that travels implicitly: the correlation id."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


@contextlib.contextmanager
def correlated(value: str) -> Iterator[None]:
    """Run the block with ``value`` as the correlation id of the events it emits."""
    token = correlation_id.set(value)
    try:
        yield
    finally:
        correlation_id.reset(token)
