"""UUIDv7 identifiers: time-ordered, so primary-key inserts stay local in the index."""

from __future__ import annotations

import os
import threading
import time
import uuid


class _Generator(threading.local):
    """UUIDv7 state: the last millisecond used and a counter within it (RFC 9562, method 1).

    The state is per thread, so no lock is shared: ids of one thread are strictly ordered;
    ids made by different threads within one millisecond are ordered by their random bits.
    """

    def __init__(self) -> None:
        self._last_ms = 0
        self._counter = 0

    def next(self) -> uuid.UUID:
        ms = time.time_ns() // 1_000_000
        if ms <= self._last_ms:
            # Same (or an earlier) millisecond: keep order with the counter in rand_a.
            ms = self._last_ms
            self._counter += 1
            if self._counter > 0xFFF:
                ms += 1
                self._counter = 0
        else:
            self._counter = int.from_bytes(os.urandom(2)) & 0x3FF
        self._last_ms = ms
        counter = self._counter
        rand_b = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= counter << 64
        value |= 0b10 << 62
        value |= rand_b
        return uuid.UUID(int=value)


_generator = _Generator()


def new_id() -> uuid.UUID:
    """A new UUIDv7, monotonic within the calling thread."""
    return _generator.next()


def parse_id(text: str) -> uuid.UUID | None:
    """The UUID written in ``text``, or None when it is not one."""
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return None
