"""Deprecated import path: TaskService lives in core.services.tasks."""

from __future__ import annotations

import warnings

from core.services.tasks.service import TaskService

warnings.warn(
    "modules.task_store.service is deprecated; import TaskService from core.services.tasks",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["TaskService"]
