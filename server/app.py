"""Bootstrap: wire modules into core, build the grpc.aio server, serve until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from jobtask.v1 import events_pb2, jobs_pb2, jobs_pb2_grpc, tasks_pb2, tasks_pb2_grpc
from sqlalchemy import Engine

from core.messaging.bus import MessageBus
from core.services.jobs.service import JobService
from core.services.tasks.service import TaskService
from modules import db
from server import auth
from server.config import Settings
from server.interceptors import CallInterceptor
from server.servicers.base import off_the_loop
from server.servicers.jobs import JobServicer
from server.servicers.tasks import TaskServicer

log = logging.getLogger(__name__)

AsyncHealthServicer: Any = health.aio.HealthServicer  # type: ignore[attr-defined]

JOB_SERVICE = jobs_pb2.DESCRIPTOR.services_by_name["JobService"]
TASK_SERVICE = tasks_pb2.DESCRIPTOR.services_by_name["TaskService"]
SERVICE_NAMES = (JOB_SERVICE.full_name, TASK_SERVICE.full_name)
# Imported for their descriptors: reflection serves every message of the contract.
_CONTRACT = (events_pb2,)


@dataclass
class Application:
    """The wired services of one process."""

    settings: Settings
    engine: Engine
    bus: MessageBus
    jobs: JobService
    tasks: TaskService
    authenticator: auth.Authenticator
    executor: ThreadPoolExecutor = field(repr=False)

    def close(self) -> None:
        """Release threads and connections."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.engine.dispose()


def build_application(settings: Settings) -> Application:
    """Check the settings, connect and migrate the database, and build the services."""
    settings.check()
    authenticator = auth.Authenticator(settings.auth_mode, jwt_settings=settings.jwt_settings())
    engine = db.make_engine(settings.database_url, pool_size=settings.db_pool_size)
    db.migrate(engine)
    bus = MessageBus()
    uow = db.SqlAlchemyUnitOfWorkFactory(engine, publish=bus.publish)
    return Application(
        settings=settings,
        engine=engine,
        bus=bus,
        jobs=JobService(uow=uow),
        tasks=TaskService(uow=uow),
        authenticator=authenticator,
        executor=ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="jobtask-db"),
    )


@dataclass
class RunningServer:
    """A started server, the port it bound, and its health service."""

    server: grpc.aio.Server
    port: int
    health: Any

    async def stop(self, grace: float) -> None:
        """Drain: report NOT_SERVING, let in-flight calls finish within ``grace``, then stop."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_server(app: Application, listen: str | None = None) -> RunningServer:
    """Build and start the server on ``listen`` (the settings' address by default; port 0 picks one)."""
    server = grpc.aio.server(
        interceptors=[CallInterceptor(app.authenticator)],
        options=[("grpc.so_reuseport", 0)],
    )
    jobs_servicer = JobServicer(jobs=app.jobs, authenticator=app.authenticator)
    tasks_servicer = TaskServicer(tasks=app.tasks, authenticator=app.authenticator)
    jobs_pb2_grpc.add_JobServiceServicer_to_server(  # type: ignore[no-untyped-call]
        off_the_loop(jobs_servicer, JOB_SERVICE, app.executor), server
    )
    tasks_pb2_grpc.add_TaskServiceServicer_to_server(  # type: ignore[no-untyped-call]
        off_the_loop(tasks_servicer, TASK_SERVICE, app.executor), server
    )
    health_servicer = AsyncHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    address = listen or app.settings.listen
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not listen on {address}")
    await server.start()
    await asyncio.get_running_loop().run_in_executor(app.executor, db.ping, app.engine)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server=server, port=port, health=health_servicer)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain within the grace period."""
    app = build_application(settings)
    try:
        running = await start_server(app)
        host = settings.listen.rsplit(":", 1)[0]
        log.info(
            "jobtask listening on %s:%d (database %s, %s authentication)",
            host,
            running.port,
            app.engine.url.render_as_string(hide_password=True),
            settings.auth_mode,
        )
        if settings.auth_mode is auth.AuthMode.HEADERS:
            print(
                f"jobtask is serving on {host}:{running.port} with database "
                f"{app.engine.url.render_as_string(hide_password=True)}\n"
                "identity: send the headers x-actor-id, x-actor-tenant and x-actor-roles "
                "(e.g. -H 'x-actor-id: ann' -H 'x-actor-tenant: acme' -H 'x-actor-roles: operator')",
                flush=True,
            )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        log.info("draining: in-flight calls have %.0fs", settings.grace_period_s)
        await running.stop(settings.grace_period_s)
        log.info("stopped")
    finally:
        app.close()
