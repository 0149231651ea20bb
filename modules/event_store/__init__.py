"""The durable event log."""
