"""The event envelope and the JSON codec of typed payloads."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from core.common import context, ids
from core.common.actor import Actor
from core.common.clock import Clock
from core.common.jsonable import jsonable


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    """Base of every typed event payload (a frozen dataclass)."""

    # Which event types carry this payload; filled by register().
    event_types: ClassVar[tuple[str, ...]] = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """The envelope every event travels in; ``sequence`` is 0 until the log assigns one."""

    id: uuid.UUID
    type: str
    occurred_at: datetime
    tenant: str
    actor_id: str
    resource_id: uuid.UUID
    job_id: uuid.UUID | None
    correlation_id: str | None
    payload: Payload
    sequence: int = 0

    def with_sequence(self, sequence: int) -> Event:
        """The same event as stored at ``sequence`` in the log."""
        return dataclasses.replace(self, sequence=sequence)


def new_event(
    event_type: str,
    payload: Payload,
    *,
    actor: Actor,
    clock: Clock,
    resource_id: uuid.UUID,
    job_id: uuid.UUID | None = None,
) -> Event:
    """An event about ``resource_id`` emitted by ``actor`` now, in the actor's tenant."""
    if event_type not in _PAYLOADS or _PAYLOADS[event_type] is not type(payload):
        raise TypeError(f"{type(payload).__name__} is not the registered payload of {event_type}")
    return Event(
        id=ids.new_id(),
        type=str(event_type),
        occurred_at=clock.now(),
        tenant=actor.tenant,
        actor_id=actor.id,
        resource_id=resource_id,
        job_id=job_id,
        correlation_id=context.correlation_id.get(),
        payload=payload,
    )


# -- payload registry and codec -------------------------------------------------------

_PAYLOADS: dict[str, type[Payload]] = {}


def register(payload_type: type[Payload], *event_types: str) -> None:
    """Declare that events of ``event_types`` carry ``payload_type``."""
    for event_type in event_types:
        existing = _PAYLOADS.get(event_type)
        if existing is not None and existing is not payload_type:
            raise ValueError(f"{event_type} already carries {existing.__name__}")
        _PAYLOADS[event_type] = payload_type
    payload_type.event_types = tuple(sorted({*payload_type.event_types, *event_types}))


def event_types() -> frozenset[str]:
    """Every registered event type."""
    return frozenset(_PAYLOADS)


def payload_class(event_type: str) -> type[Payload]:
    """The payload class of ``event_type``; KeyError when unknown."""
    return _PAYLOADS[event_type]


def encode_payload(payload: Payload) -> dict[str, Any]:
    """A JSON-ready dict of ``payload``."""
    encoded = jsonable(payload)
    assert isinstance(encoded, dict)
    return encoded


def decode_payload(event_type: str, data: Mapping[str, Any]) -> Payload:
    """The typed payload of an ``event_type`` event from its JSON form."""
    decoded = _decode(payload_class(event_type), data)
    assert isinstance(decoded, Payload)
    return decoded


_HINTS: dict[type, dict[str, Any]] = {}


def _decode(hint: Any, raw: Any) -> Any:
    if raw is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _decode(options[0], raw)
    if origin is tuple:
        (item_hint, *_) = typing.get_args(hint)
        return tuple(_decode(item_hint, item) for item in raw)
    if origin in (dict, Mapping, typing.get_origin(Mapping[str, str])):
        return dict(raw)
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            hints = _HINTS.get(hint)
            if hints is None:
                hints = _HINTS[hint] = typing.get_type_hints(hint)
            kwargs = {
                f.name: _decode(hints[f.name], raw.get(f.name)) for f in dataclasses.fields(hint) if f.init
            }
            return hint(**kwargs)
        if issubclass(hint, enum.Enum):
            return hint(raw)
        if hint is uuid.UUID:
            return uuid.UUID(raw)
        if hint is datetime:
            return datetime.fromisoformat(raw)
        if hint is timedelta:
            return timedelta(seconds=raw)
    return raw
