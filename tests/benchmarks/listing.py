"""P4: ListJobs pages at 1M rows against the same pages at 10k rows, per filter.

Rows are seeded with one bulk SQL statement (not RPCs): 90% in tenant acme (ten kinds,
ten teams, six statuses, a hundred owners), 10% in another tenant with a kind acme does
not have. Each figure is the median time of reading two pages of 50 through JobService.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from sqlalchemy import Engine, text

from core.common.actor import Actor
from core.services.jobs import JobService
from core.services.jobs.types import JobFilters, JobStatus
from modules import db

LARGE = int(os.environ.get("BENCH_LIST_ROWS", "1000000"))
SMALL = 10_000
PAGE = 50
REPEAT = 15

ADMIN = Actor(id="admin", tenant="acme", roles=frozenset({"admin"}))
MEMBER = Actor(id="owner-7", tenant="acme", roles=frozenset({"member"}))

# name -> (actor, filters)
CASES: dict[str, tuple[Actor, JobFilters]] = {
    "no filter": (ADMIN, JobFilters()),
    "a member's own jobs": (MEMBER, JobFilters()),
    "status FAILED": (ADMIN, JobFilters(statuses=frozenset({JobStatus.FAILED}))),
    "label team=team-3": (ADMIN, JobFilters(labels={"team": "team-3"})),
    "kind kind-3": (ADMIN, JobFilters(kinds=frozenset({"kind-3"}))),
    "kinds kind-3, kind-4": (ADMIN, JobFilters(kinds=frozenset({"kind-3", "kind-4"}))),
    "kind absent from the tenant": (ADMIN, JobFilters(kinds=frozenset({"elsewhere"}))),
}

_STATUS = "(ARRAY['PENDING','SCHEDULED','RUNNING','SUCCEEDED','FAILED','CANCELLED'])[1 + i % 6]"
_POSTGRES_SEED = f"""
INSERT INTO jobs (id, tenant, name, description, kind, payload, labels, priority, status, owner,
    retry_max_attempts, retry_initial_backoff_s, retry_max_backoff_s, retry_multiplier, attempt_count,
    created_at, updated_at, version, task_total, task_done, paused)
SELECT gen_random_uuid(),
       CASE WHEN i % 10 = 9 THEN 'globex' ELSE 'acme' END,
       'job ' || i, '', CASE WHEN i % 10 = 9 THEN 'elsewhere' ELSE 'kind-' || (i % 10) END,
       '{{}}'::jsonb, jsonb_build_object('team', 'team-' || (i % 10)), 0, {_STATUS},
       'owner-' || (i % 100), 1, 1, 60, 2, 0, now(), now(), 1, 0, 0, false
FROM generate_series(1, :rows) AS i
"""
_SQLITE_SEED = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows)
INSERT INTO jobs (id, tenant, name, description, kind, payload, labels, priority, status, owner,
    retry_max_attempts, retry_initial_backoff_s, retry_max_backoff_s, retry_multiplier, attempt_count,
    created_at, updated_at, version, task_total, task_done, paused)
SELECT lower(hex(randomblob(16))),
       CASE WHEN i % 10 = 9 THEN 'globex' ELSE 'acme' END,
       'job ' || i, '', CASE WHEN i % 10 = 9 THEN 'elsewhere' ELSE 'kind-' || (i % 10) END,
       '{}', json_object('team', 'team-' || (i % 10)), 0,
       CASE i % 6 WHEN 0 THEN 'PENDING' WHEN 1 THEN 'SCHEDULED' WHEN 2 THEN 'RUNNING'
                  WHEN 3 THEN 'SUCCEEDED' WHEN 4 THEN 'FAILED' ELSE 'CANCELLED' END,
       'owner-' || (i % 100), 1, 1, 60, 2, 0, '2026-11-28 00:00:00.000000', '2026-11-28 00:00:00.000000',
       1, 0, 0, 0
FROM n
"""


def seed(engine: Engine, rows: int) -> None:
    """Migrate and fill ``engine``'s database with ``rows`` jobs in one statement."""
    db.migrate(engine)
    statement = _POSTGRES_SEED if engine.dialect.name == "postgresql" else _SQLITE_SEED
    with engine.begin() as connection:
        connection.execute(text(statement), {"rows": rows})
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def two_pages(service: JobService, actor: Actor, filters: JobFilters) -> float:
    """Median seconds to read the first two pages."""
    timings = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        first = service.list_jobs(actor, filters, page_size=PAGE)
        assert first.ok, first.error
        token = first.value.next_page_token
        if token:
            second = service.list_jobs(actor, filters, page_size=PAGE, page_token=token)
            assert second.ok, second.error
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def measure(make_engine: Callable[[str], Engine]) -> dict[str, tuple[float, float]]:
    """For each case: (seconds at LARGE rows, seconds at SMALL rows)."""
    figures: dict[str, list[float]] = {name: [] for name in CASES}
    for label, rows in (("large", LARGE), ("small", SMALL)):
        engine = make_engine(label)
        try:
            seed(engine, rows)
            service = JobService(uow=db.SqlAlchemyUnitOfWorkFactory(engine))
            for name, (actor, filters) in CASES.items():
                two_pages(service, actor, filters)  # warm the cache and the statement
                figures[name].append(two_pages(service, actor, filters))
        finally:
            engine.dispose()
    return {name: (large, small) for name, (large, small) in figures.items()}
