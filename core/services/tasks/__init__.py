"""Tasks: units of human or agent work, nested as subtasks."""

from core.services.tasks.service import TaskService

__all__ = ["TaskService"]
