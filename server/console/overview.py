"""The overview: jobs by status, and runs per minute and the failure rate over the last
hour, drawn as inline SVG."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from google.protobuf import duration_pb2
from jobtask.v1 import jobs_pb2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from server.console import words
from server.console.api import Refusal
from server.console.app import api_of, identity_of, live_page

WINDOW = duration_pb2.Duration(seconds=3600)
BUCKET = duration_pb2.Duration(seconds=60)
WIDTH, HEIGHT = 600, 120


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    """One interval of a chart: where it is drawn and what its tooltip says."""

    x: float
    width: float
    segments: tuple[tuple[str, float, float], ...]  # (class, y, height)
    title: str


def run_bars(buckets: Sequence[jobs_pb2.RunCounts]) -> tuple[list[Bar], int]:
    """Stacked bars of runs per interval (succeeded, failed, cancelled), and the tallest."""
    tallest = max((b.succeeded + b.failed + b.cancelled for b in buckets), default=0)
    scale = (HEIGHT - 4) / tallest if tallest else 0.0
    step = WIDTH / max(len(buckets), 1)
    bars = []
    for index, bucket in enumerate(buckets):
        y = float(HEIGHT)
        segments = []
        for name, count in (
            ("ok", bucket.succeeded),
            ("failed", bucket.failed),
            ("cancelled", bucket.cancelled),
        ):
            if count:
                height = count * scale
                y -= height
                segments.append((name, round(y, 2), round(height, 2)))
        start = words.when(words.moment(bucket, "start_time"))
        title = f"{start}: {bucket.succeeded} succeeded, {bucket.failed} failed, {bucket.cancelled} cancelled"
        bars.append(Bar(round(index * step, 2), round(max(step - 1, 1), 2), tuple(segments), title))
    return bars, tallest


def failure_points(buckets: Sequence[jobs_pb2.RunCounts]) -> list[tuple[float, float, str]]:
    """(x, y, tooltip) of the failure rate (failed / finished) of each interval with runs."""
    step = WIDTH / max(len(buckets), 1)
    points = []
    for index, bucket in enumerate(buckets):
        finished = bucket.succeeded + bucket.failed + bucket.cancelled
        if finished:
            rate = bucket.failed / finished
            start = words.when(words.moment(bucket, "start_time"))
            points.append(
                (
                    round(index * step + step / 2, 1),
                    round(HEIGHT - 2 - rate * (HEIGHT - 4), 1),
                    f"{start}: {rate:.0%} of {finished} failed",
                )
            )
    return points


async def _stats(request: Request) -> dict[str, Any]:
    api = api_of(request)
    try:
        counted = await api.call(
            identity_of(request),
            api.jobs.GetJobStats,
            jobs_pb2.GetJobStatsRequest(window=WINDOW, bucket_width=BUCKET),
        )
    except Refusal as refused:
        return {"refusal": refused}
    buckets = list(counted.run_counts)
    bars, tallest = run_bars(buckets)
    finished = sum(b.succeeded + b.failed + b.cancelled for b in buckets)
    failed = sum(b.failed for b in buckets)
    return {
        "counts": [(words.job_status(c.status), c.count) for c in counted.status_counts],
        "total": sum(c.count for c in counted.status_counts),
        "bars": bars,
        "tallest": tallest,
        "points": failure_points(buckets),
        "line": " ".join(f"{x},{y}" for x, y, _ in failure_points(buckets)),
        "first": words.moment(buckets[0], "start_time") if buckets else None,
        "finished": finished,
        "failed": failed,
        "rate": (failed / finished) if finished else None,
        "per_minute": finished / (WINDOW.seconds / 60),
        "as_of": words.moment(counted, "as_of_time"),
        "chart": {"width": WIDTH, "height": HEIGHT},
    }


overview, overview_panel = live_page("overview.html", "_overview_panel.html", _stats)


async def home(request: Request) -> Response:
    return RedirectResponse("/overview", status_code=303)


routes = [
    Route("/", home),
    Route("/overview", overview),
    Route("/overview/panel", overview_panel),
]
