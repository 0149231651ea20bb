"""The console in a thread of its own, in front of a real jobtask server, and a real
headless Chromium to drive it."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import uvicorn
from jobtask.v1 import jobs_pb2_grpc, tasks_pb2_grpc

from server.auth import AuthMode
from server.config import Settings
from server.console.app import ConsoleSettings, create_app
from tests.e2e.conftest import ServerThread

BROWSER_REQUIRED = os.environ.get("JOBTASK_REQUIRE_BROWSER") == "1"
# Screenshots of every page the browser tests visit (a folder of build/, not committed).
SCREENSHOTS = Path(os.environ.get("JOBTASK_TEST_OUTPUT", Path(__file__).parents[2] / "build" / "test-output"))


class ConsoleThread:
    """``create_app`` served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, settings: ConsoleSettings) -> None:
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the console did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def header_settings(tmp_path: Path) -> Settings:
    """A server trusting identity headers (loopback only), over a fresh SQLite file."""
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'console.db'}",
        auth_mode=AuthMode.HEADERS,
        log_format="text",
        workers=4,
    )


@pytest.fixture
def jobtask(header_settings: Settings) -> Iterator[ServerThread]:
    server = ServerThread(header_settings)
    server.start()
    yield server
    server.stop()


def address(server: ServerThread) -> str:
    assert server.running is not None
    return f"127.0.0.1:{server.running.port}"


@pytest.fixture
def console_for() -> Iterator[Callable[[str], str]]:
    """console_for("host:port"): the base URL of a console calling that server."""
    started: list[ConsoleThread] = []

    def start(target: str) -> str:
        console = ConsoleThread(ConsoleSettings(server=target, call_timeout=5.0, development_identity=True))
        started.append(console)
        return console.start()

    yield start
    for console in started:
        console.stop()


@pytest.fixture
def console(jobtask: ServerThread, console_for: Callable[[str], str]) -> str:
    return console_for(address(jobtask))


@pytest.fixture
def stubs(jobtask: ServerThread) -> Iterator[tuple[Any, Any]]:
    """Another client of the same server: (JobService, TaskService) stubs."""
    with grpc.insecure_channel(address(jobtask)) as channel:
        yield jobs_pb2_grpc.JobServiceStub(channel), tasks_pb2_grpc.TaskServiceStub(channel)


def identity(actor: str, roles: str, tenant: str = "acme") -> list[tuple[str, str]]:
    """Header identity metadata for the other client."""
    return [("x-actor-id", actor), ("x-actor-tenant", tenant), ("x-actor-roles", roles)]


def chromium_path() -> str | None:
    """Debian's chromium (or JOBTASK_CHROMIUM): Playwright drives it; it downloads nothing."""
    return os.environ.get("JOBTASK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module: Playwright's event loop runs in the main thread while it is
    open, which other tests' asyncio.run would trip on."""
    executable = chromium_path()
    if executable is None:
        if BROWSER_REQUIRED:
            pytest.fail("JOBTASK_REQUIRE_BROWSER=1 but no chromium is installed (apt-get install chromium)")
        pytest.skip("no chromium installed (apt-get install chromium): browser tests of the console not run")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page, 1280x800; the browser's console
    errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(5_000)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, errors


def sign_in(page: Any, console: str, actor: str, roles: tuple[str, ...], tenant: str = "acme") -> None:
    """Sign in on the console's page with a development identity."""
    page.goto(console + "/signin")
    page.fill("#actor", actor)
    page.fill("#tenant", tenant)
    for role in roles:
        page.check(f"input[name=roles][value={role}]")
    page.click("text=Sign in as this actor")
    page.wait_for_url("**/overview")


def screenshot(page: Any, name: str) -> Path:
    """Write the page as it is to the test output folder."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
