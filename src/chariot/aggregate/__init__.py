"""`chariot aggregate`: resumable, multi-process summaries of the ratings in PostgreSQL.

statistics.py  what is computed: exact definitions, column and Neo4j property names
schema.py      the job-control, staging and summary tables
partitions.py  job control: plan a run, claim / lease / complete / fail partitions
pgcopy.py      fixed-width columns between PostgreSQL and numpy (no per-row Python)
compute.py     numpy statistics of one partition's ratings
worker.py      the module-level worker every executor runs
executors.py   inline, local process pool, Dask
runner.py      the conductor: open/resume/join a run, drive workers, promote, graph
promote.py     staging -> summary tables in one transaction
graph.py       summaries -> Neo4j Movie properties
verify.py      independent plain-SQL recomputation (used by `chariot audit`)
report.py      runs and partitions for `chariot status`
"""
