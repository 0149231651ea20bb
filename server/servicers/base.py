"""What every servicer shares: identifying the actor and answering results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.message import Message

from core.common.actor import Actor
from core.common.result import OperationError, OperationResult
from server import auth
from server.conversions.common import InvalidRequest
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

    def _answer(self, context: Any, empty: type[M], work: Callable[[Actor], OperationResult[M]]) -> M:
        """Run ``work`` for the caller; a failure becomes the call's status and ``empty()``."""
        error: OperationError | None
        try:
            result = work(self._identify(context))
            error = result.error
        except InvalidRequest as exc:
            error = OperationResult.invalid(exc.violation).error
        except auth.Unauthenticated as exc:
            error = OperationResult.unauthenticated(str(exc)).error
        if error is None:
            return result.value
        set_failure(context, error)
        return empty()
