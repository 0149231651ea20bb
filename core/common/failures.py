"""FailureLog: a loop's failures logged once when they start and once when they end, not on
every retry, so an outage of a second or of an hour leaves two lines, not thousands."""

from __future__ import annotations

import logging

from core.common.errors import StorageUnavailableError


class FailureLog:
    """Tracks whether a periodic step is failing and logs only the changes."""

    def __init__(self, logger: logging.Logger, step: str) -> None:
        self._log = logger
        self._step = step
        self.failing = False

    def failed(self, error: BaseException) -> None:
        """The step failed: log it if it was working (an outage without a traceback, a bug with one)."""
        if self.failing:
            self._log.debug("%s still failing: %s", self._step, error)
            return
        self.failing = True
        if isinstance(error, StorageUnavailableError):
            self._log.error(
                "%s failed: the database is unavailable (%s); retrying quietly", self._step, error
            )
        else:
            self._log.error("%s failed; retrying quietly", self._step, exc_info=error)

    def succeeded(self) -> None:
        """The step worked: log the recovery if it was failing."""
        if self.failing:
            self.failing = False
            self._log.warning("%s works again", self._step)
