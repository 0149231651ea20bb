"""FailureLog: one line when a periodic step starts failing, one when it recovers."""

from __future__ import annotations

import logging

import pytest

from core.common.errors import StorageUnavailableError
from core.common.failures import FailureLog

log = logging.getLogger("tests.failures")


def test_an_outage_leaves_two_lines_however_long_it_lasts(caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog(log, "the step")
    with caplog.at_level(logging.INFO, logger="tests.failures"):
        failures.succeeded()
        for _ in range(100):
            failures.failed(StorageUnavailableError("connection refused"))
        failures.succeeded()
        failures.succeeded()
    assert [(r.levelname, r.exc_info is None) for r in caplog.records] == [("ERROR", True), ("WARNING", True)]
    assert "database is unavailable" in caplog.records[0].getMessage()
    assert "works again" in caplog.records[1].getMessage()


def test_a_bug_is_logged_once_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog(log, "the step")
    with caplog.at_level(logging.INFO, logger="tests.failures"):
        for _ in range(3):
            try:
                raise KeyError("boom")
            except KeyError as error:
                failures.failed(error)
    assert len(caplog.records) == 1
    assert caplog.records[0].exc_info is not None
    assert failures.failing
