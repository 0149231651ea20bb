"""Keyset pagination: opaque page tokens that name the last row seen, never an offset."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing and the token of the next page ('' when this is the last)."""

    items: Sequence[T]
    next_page_token: str = ""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A validated page request: at most ``size`` items after the key ``after``."""

    size: int
    after: uuid.UUID | None


class InvalidPageRequest(ValueError):
    """The page size or token is not acceptable; ``field`` names which."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


def fingerprint(*parts: object) -> str:
    """A short digest of the filter a token was issued for."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def encode_token(last_id: uuid.UUID, filter_fingerprint: str) -> str:
    """The opaque token for the page that follows ``last_id``."""
    raw = json.dumps({"k": last_id.hex, "f": filter_fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Tokens this service issues are well under this; anything longer is refused unread.
MAX_TOKEN_LENGTH = 1024


def page_request(page_size: int, page_token: str, filter_fingerprint: str) -> PageRequest:
    """Check a page size and token; raise InvalidPageRequest naming the bad field."""
    if page_size < 0:
        raise InvalidPageRequest("page_size", "must not be negative")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    if not page_token:
        return PageRequest(size=size, after=None)
    if len(page_token) > MAX_TOKEN_LENGTH:
        raise InvalidPageRequest("page_token", "is not a token this service issued")
    try:
        padded = page_token + "=" * (-len(page_token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = uuid.UUID(hex=data["k"])
        issued_for = data["f"]
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise InvalidPageRequest("page_token", "is not a token this service issued") from exc
    if issued_for != filter_fingerprint:
        raise InvalidPageRequest("page_token", "was issued for a different filter")
    return PageRequest(size=size, after=after)


class Keyed(Protocol):
    """Anything listed by keyset: its id is its position."""

    @property
    def id(self) -> uuid.UUID: ...


K = TypeVar("K", bound=Keyed)


def make_page(rows: Sequence[K], request: PageRequest, filter_fingerprint: str) -> Page[K]:
    """A page from ``rows`` fetched with one extra row to learn whether more follow;
    the token names the id of the last row kept."""
    items = list(rows[: request.size])
    if len(rows) <= request.size:
        return Page(items=items)
    return Page(items=items, next_page_token=encode_token(items[-1].id, filter_fingerprint))
