"""The layout promises of docs/architecture.md: old import paths, and core's independence."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import core.services.jobs
import core.services.tasks

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("modules.job_store.service", core.services.jobs, "JobService"),
        ("modules.task_store.service", core.services.tasks, "TaskService"),
    ],
)
def test_the_old_import_paths_warn_and_give_the_same_class(old: str, new: object, name: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.__name__):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(new, name)


def test_core_imports_neither_grpc_protobuf_nor_sqlalchemy() -> None:
    forbidden = ("grpc", "google", "sqlalchemy", "alembic", "psycopg", "modules", "server")
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []
