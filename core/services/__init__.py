"""The services of jobtask: JobService and TaskService, usable in-process."""
