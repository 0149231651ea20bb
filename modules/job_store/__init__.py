"""Persistence of jobs and their runs."""
