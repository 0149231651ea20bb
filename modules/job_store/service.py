"""Deprecated import path: JobService lives in core.services.jobs."""

from __future__ import annotations

import warnings

from core.services.jobs.service import JobService

warnings.warn(
    "modules.job_store.service is deprecated; import JobService from core.services.jobs",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["JobService"]
