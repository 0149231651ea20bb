"""Typed events, their envelope and codec, and the in-process message bus."""
