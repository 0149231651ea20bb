"""What every servicer shares: identifying the actor, answering results, running off the loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from google.protobuf.descriptor import ServiceDescriptor
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
        """The actor the interceptor established, else the one the call's metadata proves."""
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


def off_the_loop(servicer: object, service: ServiceDescriptor, executor: Executor) -> object:
    """An object with an async method per RPC of ``service`` that runs ``servicer``'s in ``executor``.

    The context (actor, correlation id) is copied into the worker thread.
    """

    def bind(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        async def call(request: Any, context: Any) -> Any:
            run = contextvars.copy_context().run
            return await asyncio.get_running_loop().run_in_executor(executor, run, method, request, context)

        return call

    adapter = type(f"Async{type(servicer).__name__}", (), {})()
    for rpc in service.methods:
        setattr(adapter, rpc.name, bind(getattr(servicer, rpc.name)))
    return adapter
