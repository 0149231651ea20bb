"""jsonable: the one JSON form of domain values, for payloads and error details."""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from datetime import UTC, datetime, timedelta

from core.common.jsonable import jsonable


class Colour(enum.StrEnum):
    RED = "RED"


@dataclasses.dataclass(frozen=True)
class Inner:
    at: datetime
    wait: timedelta


def test_every_domain_value_becomes_json() -> None:
    ident = uuid.UUID(int=7)
    value = {
        "id": ident,
        "colour": Colour.RED,
        "inner": Inner(at=datetime(2030, 1, 1, tzinfo=UTC), wait=timedelta(seconds=90)),
        "ids": frozenset({"b", "a"}),
        "pair": (1, ident),
        3: None,
    }
    ready = jsonable(value)
    assert ready == {
        "id": str(ident),
        "colour": "RED",
        "inner": {"at": "2030-01-01T00:00:00+00:00", "wait": 90.0},
        "ids": ["a", "b"],
        "pair": [1, str(ident)],
        "3": None,
    }
    assert json.loads(json.dumps(ready)) == ready
