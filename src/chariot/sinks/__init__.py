"""Sinks: where rows are written, each with its own checkpoint and its own failure."""
