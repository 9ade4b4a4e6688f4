"""The Neo4j sink (entry point ``chariot.sinks.neo4j:Neo4jSink``)."""

from chariot.sinks.neo4j.sink import Neo4jSink

__all__ = ["Neo4jSink"]
