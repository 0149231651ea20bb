"""The Python worker's pieces that need no server: progress, results, errors."""

from __future__ import annotations

import pytest
from jobtask.v1 import jobs_pb2

from server.worker import JobContext, _result_of


def context() -> JobContext:
    return JobContext(job=jobs_pb2.Job(id="j"), run_id="r", payload={})


def test_progress_is_checked_where_the_handler_can_see_it() -> None:
    job = context()
    job.progress(50, "half\x00way")
    assert job._take_progress() == (50.0, "halfway")
    assert job._take_progress() is None
    for wrong in (-1, 100.5, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 100"):
            job.progress(wrong)
    with pytest.raises(ValueError, match="could not convert"):
        job.progress("half")  # type: ignore[arg-type]


def test_what_a_handler_returns_becomes_data_and_message() -> None:
    assert _result_of(None) == ({}, "")
    assert _result_of({"rows": 3}) == ({"rows": 3}, "")
    assert _result_of(({"rows": 3}, "ok")) == ({"rows": 3}, "ok")
    assert _result_of("done\x00") == ({}, "done")
    with pytest.raises(TypeError, match="mapping"):
        _result_of(([1, 2], "ok"))


def test_cancel_callbacks_run_once_and_late_ones_at_once() -> None:
    job = context()
    calls: list[str] = []
    job.on_cancel(lambda: calls.append("early"))
    job._cancel()
    job._cancel()
    job.on_cancel(lambda: calls.append("late"))
    assert calls == ["early", "late"]
    assert job.cancelled and job.wait_cancelled(0)
