"""Several server processes on one port: each a full replica, the kernel spreading connections.

The parent migrates the database once, holds the port with ``SO_REUSEPORT`` (so port 0 is
resolved once and every child binds the same one), starts the children, restarts one that
dies, and on SIGTERM or SIGINT passes the signal on and waits for them to drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess

from modules import db
from server import app, logs
from server.config import Settings

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0


def serve(settings: Settings, *, processes: int) -> int:
    """Run ``processes`` server processes until SIGTERM or SIGINT; return the exit code."""
    engine = db.make_engine(settings.database_url, pool_size=1, timeouts=settings.db_timeouts())
    db.migrate(engine)
    engine.dispose()
    with reserve_port(settings.listen) as port:
        host = settings.listen.rsplit(":", 1)[0]
        child_settings = dataclasses.replace(settings, listen=f"{host}:{port}", processes=1)
        spawn = multiprocessing.get_context("spawn")
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        children: list[BaseProcess] = []

        def pass_on_hangup(*_: object) -> None:
            # SIGHUP re-reads the TLS files: each process serves its own port handle.
            for child in children:
                if child.is_alive() and child.pid is not None:
                    os.kill(child.pid, signal.SIGHUP)

        signal.signal(signal.SIGHUP, pass_on_hangup)
        for index in range(processes):
            children.append(_start(spawn, child_settings, index))
        app.announce(settings, port, f"{processes} processes")
        while not stopping.wait(0.5):
            for index, child in enumerate(children):
                if not child.is_alive():
                    log.error("server process %d exited with %s; starting another", index, child.exitcode)
                    time.sleep(RESTART_DELAY_S)
                    children[index] = _start(spawn, child_settings, index)
        log.info("stopping %d server processes", len(children))
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: the child drains as a single server does
        deadline = time.monotonic() + settings.grace_period_s + 10
        for child in children:
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                log.error("server process %s did not stop in time; killing it", child.pid)
                child.kill()
                child.join()
    return 0


@contextlib.contextmanager
def reserve_port(listen: str) -> Iterator[int]:
    """Bind ``listen`` with SO_REUSEPORT (not listening) for as long as the block runs; yield the port."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, int(port)))
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _start(spawn: SpawnContext, settings: Settings, index: int) -> BaseProcess:
    if settings.metrics_listen:
        # Each process serves its own metrics, on consecutive ports.
        host, _, port = settings.metrics_listen.rpartition(":")
        settings = dataclasses.replace(settings, metrics_listen=f"{host}:{int(port) + index}")
    process = spawn.Process(target=_run_child, args=(settings,), name=f"jobtask-server-{index}")
    process.start()
    return process


def _run_child(settings: Settings) -> None:
    # Until the server installs its own handler, a SIGHUP (a TLS reload) must not kill it.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(app.serve(settings, reuse_port=True, announced=True))
