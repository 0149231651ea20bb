"""Conversions shared by every service: ids, timestamps, durations, JSON, etags."""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from core.common.ids import parse_id
from core.common.jsonable import jsonable
from core.common.result import FieldViolation


class InvalidRequest(ValueError):
    """A request field that cannot become a domain value; the servicer answers INVALID_ARGUMENT."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.violation = FieldViolation(field, description)


def parse_uuid(field: str, text: str, *, required: bool = True) -> uuid.UUID | None:
    """The UUID in ``text``; None when empty and not required."""
    if not text:
        if required:
            raise InvalidRequest(field, "is required")
        return None
    value = parse_id(text)
    if value is None:
        raise InvalidRequest(field, f"must be a UUID (got {text!r})")
    return value


def require_uuid(field: str, text: str) -> uuid.UUID:
    """The UUID in ``text``, which must be given."""
    value = parse_uuid(field, text)
    assert value is not None
    return value


ETAG_MAX_DIGITS = 19  # versions are BIGINT


def parse_etag(text: str, field: str = "etag") -> int | None:
    """The version an etag names; None for no etag."""
    if not text:
        return None
    # ASCII digits only ("²".isdigit() is true), and no longer than any version can be.
    if len(text) > ETAG_MAX_DIGITS or not (text.isascii() and text.isdigit()):
        raise InvalidRequest(field, "is not an etag this service issued")
    return int(text)


def etag(version: int) -> str:
    """The etag of a version."""
    return str(version)


def to_timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp of an aware datetime."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def from_timestamp(stamp: timestamp_pb2.Timestamp, field: str) -> datetime:
    """The aware UTC datetime of a Timestamp; INVALID_ARGUMENT naming ``field`` when out of range."""
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(field, f"is not a representable time ({exc})") from None


def optional_time(message: Any, field: str, name: str | None = None) -> datetime | None:
    """The datetime in ``message.field`` when set; ``name`` is how errors call it."""
    return from_timestamp(getattr(message, field), name or field) if message.HasField(field) else None


def from_duration(duration: duration_pb2.Duration, field: str) -> timedelta:
    """The timedelta of a Duration; INVALID_ARGUMENT naming ``field`` when out of range."""
    try:
        return duration.ToTimedelta()
    except (ValueError, OverflowError) as exc:
        raise InvalidRequest(field, f"is not a representable duration ({exc})") from None


def set_time(message: Any, field: str, value: datetime | None) -> None:
    """Set ``message.field`` from ``value`` when it is not None."""
    if value is not None:
        getattr(message, field).FromDatetime(value)


def to_duration(value: timedelta) -> duration_pb2.Duration:
    """A Duration of a timedelta."""
    duration = duration_pb2.Duration()
    duration.FromTimedelta(value)
    return duration


def to_struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    """A Struct of a JSON object."""
    struct = struct_pb2.Struct()
    struct.update(jsonable(value))
    return struct


def from_struct(struct: struct_pb2.Struct, field: str) -> dict[str, Any]:
    """The JSON object of a Struct (whole numbers come back as ints); INVALID_ARGUMENT
    naming ``field`` for what JSON cannot hold (NaN, infinities)."""
    try:
        return _whole_numbers(json_format.MessageToDict(struct))  # type: ignore[no-any-return]
    except (ValueError, json_format.Error) as exc:
        raise InvalidRequest(field, f"is not a JSON object ({exc})") from None


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def enum_from_proto(field: str, number: int, proto_enum: Any, domain: type[enum.Enum], prefix: str) -> Any:
    """The domain enum member a proto enum number names; INVALID_ARGUMENT when unknown."""
    try:
        name = proto_enum.Name(number)
    except ValueError:
        raise InvalidRequest(field, f"unknown value {number}") from None
    if not name.startswith(prefix) or name.endswith("_UNSPECIFIED"):
        raise InvalidRequest(field, f"must be specified (got {name})")
    return domain(name.removeprefix(prefix))


def enum_to_proto(value: enum.Enum, proto_enum: Any, prefix: str) -> Any:
    """The proto enum number of a domain enum member (typed as the generated enum)."""
    return proto_enum.Value(prefix + str(value.value))


FieldPaths = Callable[[str], str]


def request_paths(
    root: str = "", renamed: Mapping[str, str] | None = None, top_level: Collection[str] = ("request_id",)
) -> FieldPaths:
    """How a field the core names is named in the request, so a client can map each
    violation to its field mechanically: a listing's ``filter.x`` is the request's ``x``;
    ``renamed`` maps the core's names to the message's (``due_at`` -> ``due_time``); the
    rest lives under ``root`` (``job.``), but for ``top_level`` fields."""
    renames = dict(renamed or {})

    def path(field: str) -> str:
        name = field.removeprefix("filter.")
        name = renames.get(name, name)
        return name if not root or name in top_level else root + name

    return path
