"""`chariot aggregate`: resumable, multi-process summaries of the project's declared
``[aggregations]``, computed in PostgreSQL (definitions: ``chariot.project.aggregations``).

declared.py    an aggregation of the project compiled: its rows, partitioning, tables, types
schema.py      the job-control and staging tables; the summary tables' DDL
partitions.py  job control: plan a run, claim / lease / complete / fail partitions
compute.py     the SQL of one partition's statistics
worker.py      the module-level worker every executor runs
executors.py   inline, local process pool, Dask
runner.py      the conductor: open/resume/join a run, drive workers, promote, graph
promote.py     staging -> summary tables in one transaction
touched.py     the groups a change-capture sync touched (recorded by the PostgreSQL sink)
incremental.py recompute and promote only those groups
graph.py       summaries -> properties of the nodes of the aggregation's label in Neo4j
verify.py      independent plain-SQL recomputation (used by `chariot audit`)
report.py      runs and partitions for `chariot status`
pgcopy.py      fixed-width columns between PostgreSQL and numpy (no per-row Python)
"""
