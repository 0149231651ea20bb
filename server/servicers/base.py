"""What every servicer shares: identifying the actor and answering results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.protobuf.message import Message

from core.common.actor import Actor
from core.common.result import ErrorCode, FieldViolation, OperationResult
from server import auth
from server.conversions.common import FieldPaths, InvalidRequest
from server.errors import set_failure

M = TypeVar("M", bound=Message)


class Servicer:
    """Base of the servicers. Methods are synchronous: the server runs them off the event loop."""

    def __init__(self, *, authenticator: auth.Authenticator) -> None:
        self._authenticator = authenticator

    def _identify(self, context: Any) -> Actor:
        """The actor the call guard established, else the one the call's metadata proves."""
        actor = auth.current_actor.get()
        if actor is not None:
            return actor
        return self._authenticator.authenticate(context.invocation_metadata())

    def _answer(
        self,
        context: Any,
        empty: type[M],
        work: Callable[[Actor], OperationResult[M]],
        paths: FieldPaths | None = None,
    ) -> M:
        """Run ``work`` for the caller; a failure becomes the call's status and ``empty()``.
        ``paths`` names the fields of the core's violations as the request names them."""
        try:
            result = work(self._identify(context))
        except (InvalidRequest, auth.Unauthenticated) as exc:
            return _refuse(context, empty, exc)
        return _respond(context, empty, result, paths)

    async def _answer_async(
        self, context: Any, empty: type[M], work: Callable[[Actor], Awaitable[OperationResult[M]]]
    ) -> M:
        """``_answer`` for work that waits on the event loop (a long poll)."""
        try:
            result = await work(self._identify(context))
        except (InvalidRequest, auth.Unauthenticated) as exc:
            return _refuse(context, empty, exc)
        return _respond(context, empty, result)


def _respond(context: Any, empty: type[M], result: OperationResult[M], paths: FieldPaths | None = None) -> M:
    error = result.error
    if error is None:
        return result.value
    if paths is not None and error.code is ErrorCode.INVALID_ARGUMENT and error.field_violations:
        renamed = [FieldViolation(paths(v.field), v.description) for v in error.field_violations]
        error = OperationResult.invalid(*renamed).reason
    set_failure(context, error)
    return empty()


def _refuse(context: Any, empty: type[M], refusal: InvalidRequest | auth.Unauthenticated) -> M:
    if isinstance(refusal, InvalidRequest):
        error = OperationResult.invalid(refusal.violation).reason
    else:
        error = OperationResult.unauthenticated(str(refusal)).reason
    set_failure(context, error)
    return empty()
