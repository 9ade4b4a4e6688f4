"""Change data capture from the source's binary log (issue #11), in layers:

* ``preconditions``: can this source be read? One line per problem, with its fix.
* ``position``: a log position (file, offset, GTID), as stored next to a checkpoint; where the
  log stands now, or at a consistent snapshot.
* ``decode``: binary-log values -> exactly what a SELECT through the source reader gives.
* ``reader``: whole source transactions of the project's tables, as decoded change records.
"""
