"""A real server on 127.0.0.1 (port 0) in a thread of its own, and clients for it."""

from __future__ import annotations

import asyncio
import faulthandler
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest

from server.app import Application, RunningServer, build_application, start_server
from server.auth import AuthMode
from server.config import Settings

SECRET = "e2e-secret-0123456789abcdef-0123456789"


class ServerThread:
    """Runs build_application + start_server on an event loop in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.app: Application | None = None
        self.running: RunningServer | None = None

    def start(self, address: str = "127.0.0.1:0") -> str:
        self.thread.start()
        self.app = build_application(self.settings)
        self.running = self.run(start_server(self.app, address))
        return f"127.0.0.1:{self.running.port}"

    def run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=30)

    def stop(self, grace: float = 0.5) -> None:
        if self.running is not None:
            try:
                self.run(self.running.stop(grace))
            except TimeoutError:
                faulthandler.dump_traceback(all_threads=True)  # where the shutdown hangs
                raise
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
        if self.app is not None:
            self.app.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """JWT settings over a fresh SQLite file."""
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'e2e.db'}",
        auth_mode=AuthMode.JWT,
        jwt_secret=SECRET,
        log_format="text",
        workers=4,
    )


@pytest.fixture
def serve() -> Iterator[Callable[[Settings], ServerThread]]:
    """Start servers with given settings; all stop at the end of the test."""
    started: list[ServerThread] = []

    def start(settings: Settings) -> ServerThread:
        server = ServerThread(settings)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(serve: Callable[[Settings], ServerThread], settings: Settings) -> ServerThread:
    return serve(settings)


@pytest.fixture
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    assert server.running is not None
    with grpc.insecure_channel(f"127.0.0.1:{server.running.port}") as chan:
        yield chan


def mint(sub: str = "ann", tenant: str = "acme", roles: tuple[str, ...] = ("operator",), **extra: Any) -> str:
    """A token the e2e server accepts, valid for an hour (modules mint theirs at import,
    and the whole suite takes minutes)."""
    claims = {"sub": sub, "tenant": tenant, "roles": list(roles), "exp": int(time.time()) + 3600, **extra}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def auth(
    sub: str = "ann", tenant: str = "acme", roles: tuple[str, ...] = ("operator",)
) -> list[tuple[str, str]]:
    """Call metadata for a token of ``sub``."""
    return [("authorization", f"Bearer {mint(sub, tenant, roles)}")]


__all__ = ["SECRET", "ServerThread", "auth", "mint", "replace"]
