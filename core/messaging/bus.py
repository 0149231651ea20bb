"""MessageBus: in-process delivery of committed events to handlers by topic pattern."""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import re
import threading
from collections.abc import Callable, Sequence

from core.messaging.events import Event

log = logging.getLogger(__name__)

Handler = Callable[[Event], None]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Subscription:
    """A handler bound to a topic pattern."""

    pattern: str
    handler: Handler
    _regex: re.Pattern[str]

    def matches(self, event_type: str) -> bool:
        """True when this subscription wants events of ``event_type``."""
        return self._regex.match(event_type) is not None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A topic pattern (``job.*``, ``*``, ``task.completed``) as a regular expression."""
    if not pattern or any(ch.isspace() for ch in pattern):
        raise ValueError(f"invalid topic pattern {pattern!r}")
    return re.compile(fnmatch.translate(pattern))


class MessageBus:
    """Delivers events to subscribed handlers; a failing handler is logged and isolated.

    The bus is fed by units of work after they commit, so a handler never sees an event
    whose change was rolled back. Handlers run on the publishing thread, in sequence order.
    """

    def __init__(self) -> None:
        self._subscriptions: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, pattern: str, handler: Handler) -> None:
        """Call ``handler`` for every published event whose type matches ``pattern``, from now
        on (for the life of the bus)."""
        subscription = Subscription(pattern, handler, compile_pattern(pattern))
        with self._lock:
            self._subscriptions = (*self._subscriptions, subscription)

    def publish(self, events: Sequence[Event]) -> None:
        """Deliver ``events`` to every matching handler, isolating failures."""
        subscriptions = self._subscriptions
        for event in events:
            for subscription in subscriptions:
                if not subscription.matches(event.type):
                    continue
                try:
                    subscription.handler(event)
                except Exception:
                    log.exception(
                        "event handler %r failed on %s #%d; the operation stands",
                        subscription.handler,
                        event.type,
                        event.sequence,
                    )
