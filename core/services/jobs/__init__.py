"""Jobs: units of machine work with a lifecycle."""

from core.services.jobs.service import JobService

__all__ = ["JobService"]
