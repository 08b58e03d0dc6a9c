"""Composition root, settings and command-line entry points (``realtime-strategies``)."""
