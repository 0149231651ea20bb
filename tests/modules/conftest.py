"""Factories of domain values for the storage tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.common.clock import FakeClock
from core.common.ids import new_id
from core.services.jobs.types import Job
from core.services.tasks.types import Task


@pytest.fixture
def new_job(clock: FakeClock) -> Callable[..., Job]:
    def build(**fields: object) -> Job:
        values: dict[str, object] = {
            "id": new_id(),
            "tenant": "acme",
            "name": "n",
            "kind": "k",
            "owner": "ann",
            "created_at": clock.now(),
            "updated_at": clock.now(),
            **fields,
        }
        return Job(**values)

    return build


@pytest.fixture
def new_task(clock: FakeClock) -> Callable[..., Task]:
    def build(**fields: object) -> Task:
        values: dict[str, object] = {
            "id": new_id(),
            "tenant": "acme",
            "title": "t",
            "owner": "ann",
            "created_at": clock.now(),
            "updated_at": clock.now(),
            **fields,
        }
        return Task(**values)

    return build
