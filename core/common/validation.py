"""Small checks shared by the services' input validation; each yields FieldViolations."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from core.common.result import FieldViolation

LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.\-/]{0,61}[A-Za-z0-9])?$")
MAX_LABELS = 64
MAX_LABEL_VALUE = 256
MAX_JSON_BYTES = 256 * 1024


def text(field: str, value: str, *, max_length: int, required: bool = False) -> Iterator[FieldViolation]:
    """A string that may be required and has a maximum length."""
    if required and not value.strip():
        yield FieldViolation(field, "must not be empty")
    if len(value) > max_length:
        yield FieldViolation(field, f"must be at most {max_length} characters (got {len(value)})")
    if "\x00" in value:
        yield FieldViolation(field, "must not contain NUL characters")


def optional_text(field: str, value: str | None, *, max_length: int) -> Iterator[FieldViolation]:
    """A string that may be absent (None)."""
    if value is not None:
        yield from text(field, value, max_length=max_length)


def labels(field: str, value: Mapping[str, str]) -> Iterator[FieldViolation]:
    """Label keys of a restricted alphabet, bounded values and count."""
    if len(value) > MAX_LABELS:
        yield FieldViolation(field, f"at most {MAX_LABELS} labels (got {len(value)})")
    for key, item in value.items():
        if not isinstance(key, str) or not LABEL_KEY.match(key):
            yield FieldViolation(
                f"{field}[{key!r}]",
                "key must be 1-63 letters, digits or '_.-/', starting and ending alphanumeric",
            )
        if not isinstance(item, str) or len(item) > MAX_LABEL_VALUE or "\x00" in item:
            yield FieldViolation(
                f"{field}[{key!r}]",
                f"value must be a string of at most {MAX_LABEL_VALUE} characters, without NUL",
            )


def json_object(field: str, value: Any) -> Iterator[FieldViolation]:
    """A JSON object, serializable and bounded in size."""
    if not isinstance(value, Mapping):
        yield FieldViolation(field, "must be a JSON object")
        return
    try:
        size = len(json.dumps(value, allow_nan=False, separators=(",", ":")))
    except (TypeError, ValueError) as exc:
        yield FieldViolation(field, f"must be serializable as JSON ({exc})")
        return
    if size > MAX_JSON_BYTES:
        yield FieldViolation(field, f"must be at most {MAX_JSON_BYTES} bytes of JSON (got {size})")
    elif "\\u0000" in json.dumps(value):
        yield FieldViolation(field, "must not contain NUL characters")


def int_range(field: str, value: int, low: int, high: int) -> Iterator[FieldViolation]:
    """An integer within [low, high]."""
    if not low <= value <= high:
        yield FieldViolation(field, f"must be between {low} and {high} (got {value})")
