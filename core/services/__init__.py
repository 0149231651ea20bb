"""The services of jobtask: JobService and TaskService, usable in-process.

Importing any of them first loads the catalog of event types (core/services/catalog.py),
which registers every type with the event codec.
"""

from core.services import catalog as catalog
