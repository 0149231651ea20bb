"""Protobuf <-> domain conversions, one module per service."""
