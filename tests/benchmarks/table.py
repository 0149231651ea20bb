"""``make bench``: one table of jobtask's figures against baselines measured in the same run.

SQLite always (a fresh file); PostgreSQL when ``BENCH_DATABASE_URL`` (default: the tests'
server, postgresql+psycopg://postgres@127.0.0.1:5432/postgres) is reachable, in a database
of its own. The machine is shared and noisy: read the ratios, not the absolute figures.
``BENCH_SECONDS`` sets each timed load (3 s), ``BENCH_LIST_ROWS`` the large listing (1M),
``BENCH_SERVER_LOG`` a file for the servers' warnings.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine

from modules import db
from tests.benchmarks import fanout, harness, listing, peers, rss, unary
from tests.benchmarks.harness import Row

POSTGRES_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CYCLES = 2000


def backend_rows(backend: str, database_url: str, folder: Path) -> Iterator[Row]:
    postgres = backend == "PostgreSQL"
    get_goal = 0.4 if postgres else 0.6
    with harness.bare_server() as bare, harness.jobtask_server(database_url) as (address, _):
        echo = asyncio.run(unary.echo_rate(bare))
        calls = asyncio.run(unary.get_and_create(address))
        yield Row(
            backend,
            "P1 GetJob vs bare echo",
            calls["GetJob"],
            echo,
            "calls/s",
            f">= {get_goal}x",
            calls["GetJob"] / echo >= get_goal,
        )
        raw = unary.raw_postgres_inserts(database_url) if postgres else unary.raw_sqlite_inserts(folder)
        raw_name = "raw psycopg INSERT+COMMIT, 8 conns" if postgres else "raw sqlite3 INSERT+COMMIT"
        yield Row(
            backend,
            f"P2 CreateJob vs {raw_name}",
            calls["CreateJob"],
            raw,
            "calls/s",
            ">= 0.4x",
            calls["CreateJob"] / raw >= 0.4,
        )
        if postgres:
            deferred = peers.defer_rate(database_url)
            yield Row(
                backend,
                "P6 CreateJob vs procrastinate defer_async, 8 callers",
                calls["CreateJob"],
                deferred,
                "jobs/s",
                ">= 1.0x",
                calls["CreateJob"] >= deferred,
            )
            cycles = asyncio.run(unary.start_complete_cycles(address, CYCLES))
            worked = peers.worker_rate(database_url, CYCLES)
            yield Row(
                backend,
                "P7 StartJob+CompleteJob, 8 workers vs procrastinate worker, concurrency 8",
                cycles,
                worked,
                "jobs/s",
                ">= 1.0x",
                cycles >= worked,
            )
            claimed = asyncio.run(unary.claim_complete_cycles(address, CYCLES))
            yield Row(
                backend,
                "P8 ClaimJobs+CompleteJob, 8 workers vs procrastinate worker, concurrency 8",
                claimed,
                worked,
                "jobs/s",
                ">= 1.0x",
                claimed >= worked,
            )
        bare_fan = asyncio.run(fanout.bare(bare, paced=False))
        fan = asyncio.run(fanout.jobtask(address, paced=False))
        yield Row(
            backend,
            f"P3 fan-out to {fanout.SUBSCRIBERS} subscribers vs bare stream",
            fan["deliveries_per_s"],
            bare_fan["deliveries_per_s"],
            "deliveries/s",
            ">= 0.5x",
            fan["deliveries_per_s"] / bare_fan["deliveries_per_s"] >= 0.5,
        )
        bare_paced = asyncio.run(fanout.bare(bare, paced=True))
        paced = asyncio.run(fanout.jobtask(address, paced=True))
        yield Row(
            backend,
            f"P3 p99 commit-to-receive at {fanout.PACE:.0f} events/s vs bare stream",
            paced["p99_ms"],
            bare_paced["p99_ms"],
            "ms",
            "< 25 ms",
            paced["p99_ms"] < 25,
        )
    with harness.jobtask_server(database_url, processes=1) as (address, process):
        before, during = asyncio.run(rss.with_idle_streams(address, process.pid))
        yield Row(
            backend,
            f"P5 server RSS with {rss.STREAMS} idle streams vs idle",
            during,
            before,
            "MB",
            "< 300 MB",
            during < 300,
        )

    def listing_engine(label: str) -> Engine:
        # Seeding a million rows is one long statement: allow it.
        timeouts = db.Timeouts(statement_s=1800)
        if postgres:
            url = harness.fresh_postgres(POSTGRES_URL, f"jobtask_bench_list_{label}")
            return db.make_engine(url, timeouts=timeouts)
        return db.make_engine(f"sqlite:///{folder / f'list-{label}.db'}")

    for name, (large, small) in listing.measure(listing_engine).items():
        yield Row(
            backend,
            f"P4 ListJobs 2 pages at {listing.LARGE:,} vs {listing.SMALL:,} rows: {name}",
            large * 1000,
            small * 1000,
            "ms",
            "<= 1.3x",
            large / small <= 1.3,
        )


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'backend':11} {'metric':78} {'jobtask':>10} {'baseline':>10} {'unit':13} "
        f"{'ratio':>7} {'goal':>9} met"
    )
    print("\n" + header)
    print("-" * len(header))
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        print(
            f"{row.backend:11} {row.metric:78} {row.figure:>10.1f} {row.baseline:>10.1f} {row.unit:13} "
            f"{row.ratio:>6.2f}x {row.goal:>9} {met}",
            flush=True,
        )


def main() -> int:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="jobtask-bench-") as tmp:
        folder = Path(tmp)
        backends = [("SQLite", f"sqlite:///{folder / 'bench.db'}")]
        if harness.postgres_reachable(POSTGRES_URL):
            backends.append(("PostgreSQL", harness.fresh_postgres(POSTGRES_URL, "jobtask_bench")))
        else:
            print(f"PostgreSQL at {POSTGRES_URL} is not reachable: its rows are left out", file=sys.stderr)
        for backend, url in backends:
            for row in backend_rows(backend, url, folder):
                rows.append(row)
                print(
                    f"  {row.backend}: {row.metric}: {row.figure:.1f} {row.unit} ({row.ratio:.2f}x)",
                    file=sys.stderr,
                    flush=True,
                )
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
