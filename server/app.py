"""Bootstrap: wire modules into core, build the grpc.aio server, serve until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from jobtask.v1 import events_pb2, events_pb2_grpc, jobs_pb2, tasks_pb2
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from core.common.clock import SystemClock
from core.common.failures import FailureLog
from core.messaging.bus import MessageBus
from core.messaging.events import Event
from core.messaging.feed import EventFeed
from core.messaging.reactions import Reactor
from core.services.catalog import can_see
from core.services.event_log import EventLogReader
from core.services.jobs import runnable as runnable_jobs
from core.services.jobs.runnable import RunnableJobs
from core.services.jobs.scheduler import Scheduler
from core.services.jobs.service import JobService
from core.services.jobs.types import Job, JobStatus
from core.services.tasks.service import TaskService
from core.services.unit_of_work import UnitOfWork, UnitOfWorkFactory
from modules import db, locks
from modules.event_store.relay import Notice, PostgresEventRelay
from server import auth, tls
from server.config import Settings
from server.guard import CallGuard
from server.health import follow_database
from server.metrics import Metrics
from server.servicers.events import EventServicer
from server.servicers.jobs import JobServicer
from server.servicers.tasks import TaskServicer
from server.tracing import Tracing

log = logging.getLogger(__name__)

T = TypeVar("T")
AsyncHealthServicer: Any = health.aio.HealthServicer  # type: ignore[attr-defined]

JOB_SERVICE = jobs_pb2.DESCRIPTOR.services_by_name["JobService"]
TASK_SERVICE = tasks_pb2.DESCRIPTOR.services_by_name["TaskService"]
EVENT_SERVICE = events_pb2.DESCRIPTOR.services_by_name["EventService"]
SERVICE_NAMES = (JOB_SERVICE.full_name, TASK_SERVICE.full_name, EVENT_SERVICE.full_name)
PRUNE_EVERY_S = 300.0
REACT_EVERY_S = 1.0


@dataclass
class Application:
    """The wired services of one process."""

    settings: Settings
    engine: Engine
    bus: MessageBus
    uow: UnitOfWorkFactory
    jobs: JobService
    tasks: TaskService
    authenticator: auth.Authenticator
    reactor: Reactor[UnitOfWork]
    scheduler: Scheduler
    executor: ThreadPoolExecutor = field(repr=False)
    metrics: Metrics = field(default_factory=Metrics, repr=False)
    tracing: Tracing | None = field(default=None, repr=False)

    async def blocking(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking (database) work on the worker threads."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def prune_events(self) -> int:
        """Drop events older than the retention period."""
        horizon = SystemClock().now() - timedelta(hours=self.settings.event_retention_h)
        with self.uow() as work:
            pruned = work.log.prune(horizon)
            work.commit()
        return pruned

    def close(self) -> None:
        """Release the scheduler lock, threads and connections; export the last spans."""
        self.scheduler.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.engine.dispose()
        if self.tracing is not None:
            self.tracing.shutdown()


def build_application(settings: Settings) -> Application:
    """Check the settings, connect and migrate the database, and build the services."""
    settings.check()
    authenticator = auth.Authenticator(settings.auth_mode, jwt_settings=settings.jwt_settings())
    timeouts = settings.db_timeouts()
    engine = db.make_engine(settings.database_url, pool_size=settings.db_pool_size, timeouts=timeouts)
    db.migrate(engine)
    bus = MessageBus()
    uow = db.SqlAlchemyUnitOfWorkFactory(
        engine, publish=bus.publish, timeouts=timeouts, notice=runnable_jobs.notice
    )
    jobs = JobService(uow=uow)
    tasks = TaskService(uow=uow, jobs=jobs)
    tracing = Tracing.from_setting(settings.traces)
    if tracing is not None:
        tracing.instrument(engine)
    return Application(
        settings=settings,
        engine=engine,
        bus=bus,
        uow=uow,
        jobs=jobs,
        tasks=tasks,
        authenticator=authenticator,
        reactor=Reactor(uow=uow, reactions=[*jobs.reactions(), *tasks.reactions()]),
        scheduler=Scheduler(jobs=jobs, lock=locks.leader_lock(engine)),
        executor=ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="jobtask-db"),
        tracing=tracing,
    )


@dataclass
class RunningServer:
    """A started server, the port it bound, its health service and its event feed."""

    server: grpc.aio.Server
    port: int
    health: Any
    feed: EventFeed
    runnable: RunnableJobs
    certificates: tls.CertificateFiles | None = None
    metrics_server: Any = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    relay: PostgresEventRelay | None = None

    async def stop(self, grace: float) -> None:
        """Drain: report NOT_SERVING, end event streams with UNAVAILABLE, answer waiting
        claims, let in-flight calls finish within ``grace``, then stop."""
        await self.health.enter_graceful_shutdown()
        await self.feed.close()
        self.runnable.close()
        for task in self.background:
            task.cancel()
        await self.server.stop(grace)
        if self.relay is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.relay.stop)
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()


class _Wake:
    """A wake-up flag settable from any thread: by an event of this process (a bus handler)
    or a commit's notice from any process (the relay)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.flag = asyncio.Event()

    def on_event(self, event: Event) -> None:
        self.set()

    def on_notice(self, notice: Notice) -> None:
        self.set()

    def set(self) -> None:
        self.loop.call_soon_threadsafe(self.flag.set)

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.flag.wait()
        self.flag.clear()


async def _react_continuously(app: Application, wake: _Wake) -> None:
    """Run the durable reactions whenever events commit (and every second regardless)."""
    failures = FailureLog(log, "running reactions")
    while True:
        try:
            await app.blocking(app.reactor.run_until_idle)
            failures.succeeded()
        except Exception as error:
            failures.failed(error)
        await wake.wait(REACT_EVERY_S)


async def _schedule_continuously(app: Application) -> None:
    """Promote due jobs every scheduler interval while this replica leads."""
    failures = FailureLog(log, "the scheduler step")
    while True:
        try:
            moved = await app.blocking(app.scheduler.tick)
            failures.succeeded()
            if app.scheduler.leading:
                _count_scheduler_step(app.metrics, moved)
            if moved:
                log.info("scheduler moved %d jobs (due, or their lease lapsed)", len(moved))
        except Exception as error:
            failures.failed(error)
        await asyncio.sleep(app.settings.scheduler_interval_s)


def _count_scheduler_step(metrics: Metrics, moved: list[Job]) -> None:
    metrics.scheduler_steps.inc()
    now = SystemClock().now()
    for job in moved:
        if job.status is JobStatus.PENDING:
            metrics.scheduler_moved.labels("promoted").inc()
            if job.next_run_at is not None:
                metrics.scheduler_lateness.observe(max(0.0, (now - job.next_run_at).total_seconds()))
        else:
            metrics.scheduler_moved.labels("reaped").inc()


async def _prune_periodically(app: Application) -> None:
    """Retention: events older than their retention, on every replica (idempotent); finished
    runs beyond each job's newest ones, by the scheduler's leader."""
    failures = FailureLog(log, "pruning the event log and old runs")
    settings = app.settings
    while True:
        try:
            pruned = await app.blocking(app.prune_events)
            app.metrics.pruned.labels("events").inc(pruned)
            if pruned:
                log.info("pruned %d events older than %.0f hours", pruned, settings.event_retention_h)
            if app.scheduler.leading:
                runs = await app.blocking(
                    functools.partial(
                        app.jobs.prune_runs,
                        keep=settings.run_retention_count,
                        older_than=timedelta(hours=settings.run_retention_h),
                    )
                )
                app.metrics.pruned.labels("runs").inc(runs)
                if runs:
                    log.info("pruned %d finished runs beyond retention", runs)
            failures.succeeded()
        except Exception as error:
            failures.failed(error)
        await asyncio.sleep(PRUNE_EVERY_S)


async def start_server(
    app: Application, listen: str | None = None, *, reuse_port: bool = False
) -> RunningServer:
    """Build and start the server on ``listen`` (the settings' address by default; port 0 picks one).

    ``reuse_port`` lets several processes serve one port (server/processes.py).
    """
    interceptors = app.tracing.server_interceptors() if app.tracing is not None else []
    server = grpc.aio.server(
        options=[("grpc.so_reuseport", 1 if reuse_port else 0)], interceptors=interceptors
    )
    timeouts = app.settings.db_timeouts()
    guard = CallGuard(
        app.authenticator,
        app.executor,
        max_wait_s=timeouts.statement_s + timeouts.connect_s + 1.0,
        observe=app.metrics.observe_rpc,
    )
    runnable = RunnableJobs()
    jobs_servicer = JobServicer(
        jobs=app.jobs,
        tasks=app.tasks,
        authenticator=app.authenticator,
        runnable=runnable,
        executor=app.executor,
        claimed=app.metrics.claimed.inc,
    )
    tasks_servicer = TaskServicer(tasks=app.tasks, authenticator=app.authenticator)
    server.add_generic_rpc_handlers(
        (guard.unary_handlers(jobs_servicer, JOB_SERVICE), guard.unary_handlers(tasks_servicer, TASK_SERVICE))
    )
    feed = EventFeed(
        log=EventLogReader(uow=app.uow, executor=app.executor),
        visible=can_see,
        buffer_size=app.settings.subscriber_buffer,
        streams_per_actor=app.settings.streams_per_actor,
    )
    await feed.start()
    reactions_due = _Wake()
    relay = _deliver_live(app, feed, runnable, reactions_due)
    events_servicer = EventServicer(
        feed=feed,
        authenticator=app.authenticator,
        heartbeat_s=app.settings.heartbeat_s,
        stall_s=app.settings.stream_stall_s,
    )
    events_pb2_grpc.add_EventServiceServicer_to_server(  # type: ignore[no-untyped-call]
        guard.stream_handlers(events_servicer, EVENT_SERVICE), server
    )
    health_servicer = AsyncHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    address = listen or app.settings.listen
    certificates = app.settings.certificate_files()
    port = tls.bind(server, address, certificates)
    if port == 0:
        raise OSError(f"could not listen on {address}")
    await server.start()
    await asyncio.get_running_loop().run_in_executor(app.executor, db.ping, app.engine)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def ping() -> None:
        await app.blocking(db.ping, app.engine)

    serving = [True]
    _read_gauges(app, feed, serving)
    metrics_server = app.metrics.serve(app.settings.metrics_listen) if app.settings.metrics_listen else None
    background = [
        asyncio.create_task(
            follow_database(
                ping, health_servicer, ("", *SERVICE_NAMES), report=lambda up: serving.__setitem__(0, up)
            ),
            name="db-health",
        ),
        asyncio.create_task(_prune_periodically(app), name="prune-events"),
        asyncio.create_task(_react_continuously(app, reactions_due), name="reactions"),
        asyncio.create_task(_schedule_continuously(app), name="scheduler"),
    ]
    return RunningServer(
        server=server,
        port=port,
        certificates=certificates,
        health=health_servicer,
        feed=feed,
        runnable=runnable,
        background=background,
        relay=relay,
        metrics_server=metrics_server,
    )


def _deliver_live(
    app: Application, feed: EventFeed, runnable: RunnableJobs, reactions_due: _Wake
) -> PostgresEventRelay | None:
    """Tell whoever waits in this process that events committed: the feed's tail (event
    streams), the claims waiting for a runnable job, the reactions, the metrics. This
    process's commits reach them through the bus, with the events; on PostgreSQL, every
    process's commits through the relay (LISTEN), with the commit's notice. Each is only a
    hint: the feed and the reactions read the log itself. The relay, when one runs."""
    app.bus.subscribe("job.*", runnable.on_event)
    app.bus.subscribe("*", feed.on_event)
    app.bus.subscribe("*", app.metrics.on_event)
    # Only events some reaction wants wake the reactions; the others are stepped over on
    # the next wake or the one-second poll.
    for pattern in app.reactor.patterns():
        app.bus.subscribe(pattern, reactions_due.on_event)
    if app.engine.dialect.name != "postgresql":
        return None
    relay = PostgresEventRelay(app.engine, (feed.on_notice, reactions_due.on_notice, runnable.on_notice))
    relay.start()
    return relay


def _read_gauges(app: Application, feed: EventFeed, serving: list[bool]) -> None:
    """Point the scraped gauges at the state they report."""
    pool: Any = app.engine.pool
    gauges = app.metrics.gauges
    gauges.feed_position = lambda: feed.position
    gauges.subscribers = lambda: feed.stream_count
    gauges.subscriber_lag_max = feed.lag_max
    gauges.pool_in_use = pool.checkedout
    gauges.pool_size = pool.size
    gauges.serving = lambda: 1.0 if serving[0] else 0.0
    gauges.leading = lambda: 1.0 if app.scheduler.leading else 0.0


def announce(settings: Settings, port: int, processes: str = "one process") -> None:
    """Log where the server listens; in header mode also tell a person how to call it."""
    host = settings.listen.rsplit(":", 1)[0]
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    transport = "plaintext"
    if settings.tls_cert_file:
        transport = "mutual TLS" if settings.tls_client_ca_file else "TLS"
    log.info(
        "jobtask listening on %s:%d (%s, %s, database %s, %s authentication)",
        host,
        port,
        transport,
        processes,
        database,
        settings.auth_mode,
    )
    if settings.auth_mode is auth.AuthMode.HEADERS:
        print(
            f"jobtask is serving on {host}:{port} with database {database}\n"
            "identity: send the headers x-actor-id, x-actor-tenant and x-actor-roles "
            "(e.g. -H 'x-actor-id: ann' -H 'x-actor-tenant: acme' -H 'x-actor-roles: operator')",
            flush=True,
        )


async def serve(settings: Settings, *, reuse_port: bool = False, announced: bool = False) -> None:
    """Run until SIGTERM or SIGINT, then drain within the grace period."""
    app = build_application(settings)
    try:
        running = await start_server(app, reuse_port=reuse_port)
        if not announced:
            announce(settings, running.port)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        if running.certificates is not None:
            loop.add_signal_handler(signal.SIGHUP, running.certificates.reload)
        await stopping.wait()
        log.info("draining: in-flight calls have %.0fs", settings.grace_period_s)
        await running.stop(settings.grace_period_s)
        log.info("stopped")
    finally:
        app.close()
