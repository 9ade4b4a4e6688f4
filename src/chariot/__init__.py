"""Chariot: keep PostgreSQL and Neo4j exactly in step with a MySQL source."""

__version__ = "0.1.0"
