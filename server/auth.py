"""Authentication: the Actor of a call, from a bearer JWT or, when so configured, from
identity headers set by a trusted sidecar."""

from __future__ import annotations

import contextvars
import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from core.common.actor import SYSTEM_ACTOR_ID, Actor, Role

current_actor: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("current_actor", default=None)

ACTOR_ID_HEADER, TENANT_HEADER, ROLES_HEADER = "x-actor-id", "x-actor-tenant", "x-actor-roles"
IDENTITY_HEADERS = (ACTOR_ID_HEADER, TENANT_HEADER, ROLES_HEADER)
_CREDENTIAL_HEADERS = frozenset({*IDENTITY_HEADERS, "authorization"})
_SERVICE_PREFIX = SYSTEM_ACTOR_ID.split(":", 1)[0] + ":"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-/]{0,199}$")
# Roles a token or header may grant; "system" is the service's own and never granted.
GRANTABLE = frozenset(r.value for r in Role if r is not Role.SYSTEM)


class AuthMode(enum.StrEnum):
    """How callers prove who they are."""

    JWT = "jwt"
    HEADERS = "headers"


class Unauthenticated(Exception):
    """The call carries no acceptable identity; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JwtSettings:
    """How bearer tokens are verified."""

    key: str | bytes
    algorithms: tuple[str, ...]
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = 5.0


class Authenticator:
    """Turns call metadata into an Actor, or refuses with Unauthenticated."""

    def __init__(self, mode: AuthMode, *, jwt_settings: JwtSettings | None = None) -> None:
        if mode is AuthMode.JWT and jwt_settings is None:
            raise ValueError("JWT mode needs a secret or a public key")
        if jwt_settings is not None and any(a.lower() == "none" for a in jwt_settings.algorithms):
            raise ValueError("the 'none' algorithm is never accepted")
        self.mode = mode
        self._jwt = jwt_settings

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Actor:
        """The actor the metadata proves; Unauthenticated otherwise."""
        pairs = [(key.lower(), value) for key, value in metadata or ()]
        headers = dict(pairs)
        if len(headers) != len(pairs):
            repeated = sorted(
                {
                    key
                    for key, _ in pairs
                    if key in _CREDENTIAL_HEADERS and sum(k == key for k, _ in pairs) > 1
                }
            )
            if repeated:
                # Which copy would count is the kind of ambiguity a forged request lives on.
                raise Unauthenticated(f"the header {repeated[0]} is sent more than once")
        if self.mode is AuthMode.HEADERS:
            return self._from_headers(headers)
        present = [name for name in IDENTITY_HEADERS if name in headers]
        if present:
            raise Unauthenticated(
                f"identity headers ({', '.join(present)}) are not accepted: send a bearer token"
            )
        return self._from_token(headers.get("authorization"))

    def _from_headers(self, headers: dict[str, str | bytes]) -> Actor:
        actor_id, tenant = _text(headers.get(ACTOR_ID_HEADER)), _text(headers.get(TENANT_HEADER))
        if not actor_id or not tenant:
            raise Unauthenticated(f"{ACTOR_ID_HEADER} and {TENANT_HEADER} headers are required")
        roles = [r.strip() for r in _text(headers.get(ROLES_HEADER)).split(",") if r.strip()]
        return _actor(actor_id, tenant, roles)

    def _from_token(self, authorization: str | bytes | None) -> Actor:
        assert self._jwt is not None
        value = _text(authorization)
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("an 'authorization: Bearer <token>' header is required")
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                self._jwt.key,
                algorithms=list(self._jwt.algorithms),
                audience=self._jwt.audience,
                issuer=self._jwt.issuer,
                leeway=self._jwt.leeway_seconds,
                options={"require": ["exp", "sub"], "verify_aud": self._jwt.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        except jwt.PyJWTError:
            # e.g. a token signed with an algorithm whose key type differs from ours
            # (InvalidKeyError): the caller's mistake, told without library internals.
            raise Unauthenticated("the token is not valid: it is not signed with an accepted key") from None
        tenant = claims.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            raise Unauthenticated("the token has no 'tenant' claim")
        roles = claims.get("roles", [])
        if isinstance(roles, str):
            roles = [r for r in re.split(r"[,\s]+", roles) if r]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated("the 'roles' claim must be a list of strings")
        return _actor(str(claims["sub"]), tenant, roles, claims.get("name"))


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _actor(actor_id: str, tenant: str, roles: Sequence[str], name: object = None) -> Actor:
    if not NAME.match(actor_id) or actor_id.startswith(_SERVICE_PREFIX):
        # "system:..." ids belong to the service's own actor; no caller may claim one.
        raise Unauthenticated("the actor id is not acceptable")
    if not NAME.match(tenant):
        raise Unauthenticated("the tenant is not acceptable")
    unknown = sorted(set(roles) - GRANTABLE)
    if unknown:
        raise Unauthenticated(f"unknown roles: {', '.join(unknown)}")
    return Actor(
        id=actor_id,
        tenant=tenant,
        roles=frozenset(roles),
        display_name=name if isinstance(name, str) else None,
    )
