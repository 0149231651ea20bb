"""The console's side of the gRPC API: one channel, the signed-in identity on every call,
and refusals as words."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import grpc
import grpc.aio
import jwt
from google.protobuf import json_format
from google.protobuf.message import EncodeError, Message
from jobtask.v1 import common_pb2, events_pb2_grpc, jobs_pb2_grpc, tasks_pb2_grpc

from core.common.actor import Actor
from server.auth import ACTOR_ID_HEADER, NAME, ROLES_HEADER, TENANT_HEADER
from server.errors import operation_result_of

R = TypeVar("R", bound=Message)
# A JWT's shape: three base64url parts.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """Who the console calls as: a bearer token, or identity headers (a server in header
    mode on loopback, or behind mutual TLS)."""

    token: str = ""
    actor: str = ""
    tenant: str = ""
    roles: tuple[str, ...] = ()
    # When the token expires (seconds since the epoch), if it says.
    expires: float | None = None

    @classmethod
    def of_token(cls, token: str) -> Identity:
        """The identity of a JWT; the claims are read (not verified: the server does that)
        only to name the actor on the pages and to end the session with the token."""
        token = "".join(token.split())  # pasted across lines, or with "Bearer "
        token = token.removeprefix("Bearer")
        try:
            claims: Mapping[str, Any] = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            claims = {}
        roles = claims.get("roles", [])
        if isinstance(roles, str):
            roles = roles.replace(",", " ").split()
        expires = claims.get("exp")
        return cls(
            token=token,
            actor=str(claims.get("sub", "")),
            tenant=str(claims.get("tenant", "")),
            roles=tuple(str(r) for r in roles) if isinstance(roles, list) else (),
            expires=float(expires) if isinstance(expires, int | float) else None,
        )

    def violations(self) -> list[tuple[str, str]]:
        """What makes the identity unsendable as call metadata, by form field."""
        if self.token:
            return [] if _TOKEN.match(self.token) else [("token", "is not a JWT (three base64url parts)")]
        found = [
            (field, "letters, digits and . _ : @ - / only, up to 200, starting with a letter or digit")
            for field, value in (("actor", self.actor), ("tenant", self.tenant))
            if not NAME.match(value)
        ]
        return found

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """What each call carries."""
        if self.token:
            return (("authorization", f"Bearer {self.token}"),)
        return (
            (ACTOR_ID_HEADER, self.actor),
            (TENANT_HEADER, self.tenant),
            (ROLES_HEADER, ",".join(self.roles)),
        )

    def as_actor(self) -> Actor:
        """The actor as the pages describe it (to tell which actions its roles allow)."""
        return Actor(id=self.actor, tenant=self.tenant, roles=frozenset(self.roles))

    def to_session(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_session(cls, stored: Any) -> Identity | None:
        if not isinstance(stored, dict):
            return None
        try:
            identity = cls(
                token=str(stored.get("token", "")),
                actor=str(stored.get("actor", "")),
                tenant=str(stored.get("tenant", "")),
                roles=tuple(str(r) for r in stored.get("roles", ())),
                expires=stored.get("expires"),
            )
        except TypeError:
            return None
        return identity if identity.token or (identity.actor and identity.tenant) else None


@dataclasses.dataclass(eq=False)
class Refusal(Exception):
    """A call the server refused (or could not be made), in the words the pages show."""

    code: str
    message: str
    violations: tuple[tuple[str, str], ...] = ()
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, error: grpc.aio.AioRpcError, target: str) -> Refusal:
        """The refusal in a failed call: the OperationResult of its status details when the
        server sent one, else the status itself."""
        result = operation_result_of(error)
        if result is not None:
            return cls(
                code=common_pb2.ErrorCode.Name(result.code).removeprefix("ERROR_CODE_"),
                message=result.message,
                violations=tuple((v.field, v.description) for v in result.field_violations),
                details=json_format.MessageToDict(result.details),
            )
        code = error.code()
        if code is grpc.StatusCode.UNAVAILABLE:
            return cls(code=code.name, message=f"cannot reach jobtask at {target}")
        return cls(code=code.name, message=error.details() or code.name.lower())


class Api:
    """Stubs over one channel to a jobtask server; ``call`` adds the identity and a deadline."""

    def __init__(
        self, target: str, *, credentials: grpc.ChannelCredentials | None = None, timeout: float = 10.0
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = (
            grpc.aio.secure_channel(target, credentials) if credentials else grpc.aio.insecure_channel(target)
        )
        self.jobs = jobs_pb2_grpc.JobServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self.tasks = tasks_pb2_grpc.TaskServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self.events = events_pb2_grpc.EventServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def call(self, identity: Identity, method: Any, request: Message) -> Any:
        """One unary call as ``identity``; Refusal when it fails."""
        try:
            return await method(request, metadata=identity.metadata(), timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            raise Refusal.of(error, self.target) from None
        except (EncodeError, RecursionError) as exc:  # e.g. a payload nested past protobuf's limit
            raise Refusal("INVALID_ARGUMENT", f"the request cannot be sent: {exc}") from None

    def stream(self, identity: Identity, method: Any, request: Message) -> Any:
        """A server stream as ``identity`` (no deadline)."""
        return method(request, metadata=identity.metadata())

    async def close(self) -> None:
        await self._channel.close(None)
