"""Persistence of tasks."""
