"""The declarative base, with a naming convention so constraint names are stable; the
query shapes the repositories share."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    DateTime,
    Dialect,
    MetaData,
    Select,
    Table,
    TypeDecorator,
    and_,
    or_,
    select,
    type_coerce,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every table of jobtask."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalize to UTC; SQLite keeps it without an offset."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC where the backend returns a naive value."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonDocument: Any = JSON().with_variant(JSONB(), "postgresql")


def labels_match(column: Any, labels: Mapping[str, str], dialect: str) -> list[ColumnElement[bool]]:
    """Conditions for "the labels include every one of these pairs": one containment test on
    PostgreSQL (which the GIN index of migration 0003 serves), one JSON lookup per pair elsewhere."""
    if not labels:
        return []
    if dialect == "postgresql":
        return [type_coerce(column, JSONB).contains(dict(labels))]
    return [column[key].as_string() == value for key, value in sorted(labels.items())]


MAX_UNION_BRANCHES = 32


def keyset_page(
    table: Table,
    conditions: Sequence[ColumnElement[bool]],
    choices: Sequence[tuple[Any, Collection[Any]]],
    limit: int,
    alternatives: Sequence[ColumnElement[bool]] = (),
) -> Select[Any]:
    """Rows of ``table`` matching ``conditions`` in id order, at most ``limit``, where each
    (column, values) of ``choices`` keeps the rows whose column holds one of the values,
    and, when given, at least one of ``alternatives`` holds (owned by the reader, or
    assigned to it, or...).

    With several values or alternatives, each combination is a branch of its own (ordered
    by id, limited) of a UNION, so an index serves every branch and a page reads at most
    ``limit`` rows per branch however large the table. Past MAX_UNION_BRANCHES combinations
    the values are tested with IN, the alternatives with OR, instead.
    """
    several = [(column, sorted(values)) for column, values in choices if len(values) > 1]
    base = [*conditions, *(column == next(iter(values)) for column, values in choices if len(values) == 1)]
    combinations = list(itertools.product(*(values for _, values in several)))
    either: list[ColumnElement[bool] | None] = list(alternatives) or [None]
    if (not several and not alternatives) or len(combinations) * len(either) > MAX_UNION_BRANCHES:
        base += [column.in_(values) for column, values in several]
        if alternatives:
            base.append(or_(*alternatives))
        return select(table).where(and_(*base)).order_by(table.c.id).limit(limit)
    branches = [
        select(table)
        .where(
            and_(
                *base,
                *([alternative] if alternative is not None else []),
                *(column == value for (column, _), value in zip(several, chosen, strict=True)),
            )
        )
        .order_by(table.c.id)
        .limit(limit)
        .subquery()
        for alternative in either
        for chosen in combinations
    ]
    # A row may meet two alternatives (its owner is also its assignee): UNION keeps it once.
    combine = union if alternatives else union_all
    merged = combine(*(select(branch) for branch in branches)).subquery()
    return select(merged).order_by(merged.c.id).limit(limit)
