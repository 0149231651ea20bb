"""Building blocks shared by every core service."""
