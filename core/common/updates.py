"""Partial updates: a field an update leaves as it is holds UNSET (None can be a value)."""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class Unset(enum.Enum):
    """Marks a field an update leaves as it is."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET


def set_fields(update: DataclassInstance) -> dict[str, Any]:
    """The fields ``update`` sets (those not UNSET), by name."""
    return {
        f.name: getattr(update, f.name)
        for f in dataclasses.fields(update)
        if getattr(update, f.name) is not UNSET
    }
