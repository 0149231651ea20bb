"""Storage for jobtask: SQLAlchemy implementations of core's repositories and unit of work."""
