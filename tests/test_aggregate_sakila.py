"""Declared aggregations on Sakila (issue #10, item 5): every statistic, a group key from a
joined table, one exploded from a list (SET) column, DECIMAL measures and DATETIME /
TIMESTAMP times; each summary equals a plain SQL recomputation written here by hand, with
the process pool and with Dask."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from chariot.aggregate.runner import run_aggregation
from chariot.aggregate.verify import check_summaries
from chariot.config import Neo4jSettings, RunSettings, Settings
from chariot.connections import mysql_connect, neo4j_session, postgres_connection
from chariot.project import Project, load_project
from chariot.project.aggregations import Aggregation
from chariot.project.init import init_project
from chariot.project.streams import project_streams
from chariot.sync import sync
from tests.sakila import load_sakila
from tests.servers import Servers

pytestmark = pytest.mark.integration

AGGREGATIONS = """

# -- aggregations (added by the test) --------------------------------------------------------

[aggregations.customer_payments]
table = "payment"
group_by = "customer_id"
measure = "amount"
time_column = "payment_date"

[aggregations.customer_payments.statistics]
payments = "count"
staff = { count_distinct = "staff_id" }
total = "sum"
mean = "mean"
stddev = "stddev"
smallest = "min"
largest = "max"
median = "median"
by_range = { histogram = { edges = [0, 2, 4, 6, 8, 12] } }
by_price = { histogram = { values = [0.99, 2.99, 4.99] } }
first_payment = "earliest"
last_payment = "latest"
bayesian = { bayesian_average = { prior_weight = 5, prior_mean = 4.2 } }

# A group key read from a joined table: rentals per film (rental -> inventory).
[aggregations.film_rentals]
table = "rental"
join = { table = "inventory", on = { inventory_id = "inventory_id" } }
group_by = "inventory.film_id"
time_column = "rental_date"

[aggregations.film_rentals.statistics]
rentals = "count"
customers = { count_distinct = "customer_id" }
first_rental = "earliest"
last_rental = "latest"
last_return = { max = "return_date" }

# An exploded list (SET) key from a joined table: copies per special feature of their film.
[aggregations.feature_copies]
table = "inventory"
join = { table = "film", on = { film_id = "film_id" } }
group_by = "film.special_features"
group_as = "feature"
time_column = "last_update"

[aggregations.feature_copies.statistics]
copies = "count"
films = { count_distinct = "film_id" }
stores = { count_distinct = "store_id" }
first_update = "earliest"
last_update = "latest"

# An exploded list key of the table itself: films per special feature.
[aggregations.feature_films]
table = "film"
group_by = "special_features"
group_as = "feature"
measure = "rental_rate"

[aggregations.feature_films.statistics]
films = "count"
mean_rate = "mean"
rate_stddev = "stddev"
median_rate = "median"
total_rate = "sum"
mean_length = { mean = "length" }
longest = { max = "length" }
"""

# The same statistics, written by hand in plain SQL over the synced tables.
EXPECTED = {
    "customer_payments": """
        SELECT customer_id, count(*), count(DISTINCT staff_id), sum(amount),
            avg(amount)::float8, stddev_samp(amount)::float8, min(amount), max(amount),
            percentile_cont(0.5) WITHIN GROUP (ORDER BY amount),
            ARRAY[count(*) FILTER (WHERE amount >= 0 AND amount < 2),
                  count(*) FILTER (WHERE amount >= 2 AND amount < 4),
                  count(*) FILTER (WHERE amount >= 4 AND amount < 6),
                  count(*) FILTER (WHERE amount >= 6 AND amount < 8),
                  count(*) FILTER (WHERE amount >= 8 AND amount <= 12)],
            ARRAY[count(*) FILTER (WHERE amount = 0.99), count(*) FILTER (WHERE amount = 2.99),
                  count(*) FILTER (WHERE amount = 4.99)],
            min(payment_date), max(payment_date),
            ((5 * 4.2 + sum(amount)) / (5 + count(*)))::float8
        FROM {s}.payment GROUP BY customer_id""",
    "film_rentals": """
        SELECT i.film_id, count(*), count(DISTINCT r.customer_id), min(r.rental_date),
            max(r.rental_date), max(r.return_date)
        FROM {s}.rental r JOIN {s}.inventory i USING (inventory_id) GROUP BY i.film_id""",
    "feature_copies": """
        SELECT feature, count(*), count(DISTINCT i.film_id), count(DISTINCT i.store_id),
            min(i.last_update), max(i.last_update)
        FROM {s}.inventory i JOIN {s}.film f USING (film_id),
            unnest(f.special_features) AS feature
        GROUP BY feature""",
    "feature_films": """
        SELECT feature, count(*), avg(rental_rate)::float8, stddev_samp(rental_rate)::float8,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY rental_rate), sum(rental_rate),
            avg(length)::float8, max(length)
        FROM {s}.film, unnest(special_features) AS feature GROUP BY feature""",
}
# Group counts of Sakila: 599 paying customers, 958 rented films, 4 special features.
GROUPS = {"customer_payments": 599, "film_rentals": 958, "feature_copies": 4, "feature_films": 4}


@pytest.fixture(scope="module")
def sakila(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Project]]:
    """Sakila in a MySQL database of this module's own, `chariot init`'s project plus the
    aggregations above, synced into a PostgreSQL schema of its own."""
    name = f"chariot_t_{uuid.uuid4().hex[:12]}"
    admin = mysql_connect(servers.mysql)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        settings = Settings(
            mysql=servers.mysql.model_copy(update={"database": name}),
            postgres=servers.postgres.model_copy(update={"schema_name": name}),
            neo4j=servers.neo4j,
            run=RunSettings(partition_rows=2_000),
        )
        load_sakila(settings.mysql)
        path = tmp_path_factory.mktemp("sakila") / "chariot.toml"
        init_project(settings, path=path)
        path.write_text(path.read_text() + AGGREGATIONS)
        project = load_project(path)
        synced = sync(settings, sinks=["postgres"], streams=project_streams(project))
        assert synced.ok, synced.failures
        yield settings, project
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()
        with postgres_connection(servers.postgres, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _rows(settings: Settings, sql: str) -> dict[Any, tuple[Any, ...]]:
    with postgres_connection(settings.postgres) as connection:
        rows = connection.execute(sql.replace("{s}", f'"{settings.postgres.schema_name}"'))
        return {row[0]: tuple(row[1:]) for row in rows}


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        if expected is None or actual is None:
            return expected is actual
        return math.isclose(float(actual), float(expected), rel_tol=1e-12, abs_tol=1e-12)
    return bool(expected == actual)


def assert_summaries_equal_plain_sql(settings: Settings, project: Project) -> None:
    for name, sql in EXPECTED.items():
        expected = _rows(settings, sql)
        columns = ", ".join(f'"{c}"' for c in project.aggregations[name].statistics)
        group = project.aggregations[name].group_column
        actual = _rows(settings, f'SELECT "{group}", {columns} FROM {{s}}."{name}"')
        assert len(actual) == GROUPS[name], name
        assert sorted(actual) == sorted(expected), name
        for key, row in expected.items():
            for column, want, got in zip(columns.split(", "), row, actual[key], strict=True):
                assert _same(want, got), f"{name} {key} {column}: {got!r} != {want!r}"


def test_every_statistic_equals_plain_sql_with_worker_processes(
    sakila: tuple[Settings, Project],
) -> None:
    settings, project = sakila
    result = run_aggregation(
        settings, workers=2, executor="process", graph=False, project=project, restart=True
    )
    assert result.promoted_now and result.partitions_done_now == result.partitions_total
    # payments (16,049 rows) and rentals are cut in key ranges; the exploded keys are one each
    assert result.summaries["customer_payments"].rows_in == 16_049
    assert result.summaries["film_rentals"].rows_in == 16_044
    assert result.partitions_total > 4 + 2
    assert {name: s.groups for name, s in result.summaries.items()} == GROUPS
    assert_summaries_equal_plain_sql(settings, project)
    check = check_summaries(settings, neo4j=False, project=project)
    assert check.ok, check.model_dump_json(indent=1)
    types = _rows(
        settings,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = '{s}.customer_payments'::regclass AND a.attnum > 0",
    )
    assert types["total"] == ("numeric",) and types["smallest"] == ("numeric(5,2)",)
    assert types["first_payment"] == ("timestamp without time zone",)
    assert types["by_range"] == ("integer[]",) and types["stddev"] == ("double precision",)


def test_every_statistic_equals_plain_sql_with_dask(sakila: tuple[Settings, Project]) -> None:
    distributed = pytest.importorskip("distributed")
    settings, project = sakila
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        result = run_aggregation(
            settings,
            workers=2,
            executor="dask",
            scheduler=cluster.scheduler_address,
            graph=False,
            project=project,
            restart=True,
        )
    assert result.executor == "dask" and result.promoted_now
    assert result.partitions_done_now == result.partitions_total
    assert_summaries_equal_plain_sql(settings, project)
    assert check_summaries(settings, neo4j=False, project=project).ok


def test_a_changed_declaration_is_a_new_summary_table(
    sakila: tuple[Settings, Project], tmp_path: Path
) -> None:
    settings, project = sakila
    films = project.aggregations["feature_films"]
    narrower = films.model_copy(update={"statistics": {"films": films.statistics["films"]}})
    changed = project.model_copy(
        update={"aggregations": {**project.aggregations, "feature_films": narrower}}
    )
    run_aggregation(settings, workers=1, graph=False, project=changed)
    columns = _rows(
        settings,
        "SELECT a.attname FROM pg_attribute a WHERE a.attnum > 0 AND NOT a.attisdropped "
        "AND a.attrelid = '{s}.feature_films'::regclass",
    )
    assert set(columns) == {"feature", "films", "run_id"}
    assert check_summaries(settings, neo4j=False, project=changed).ok


def test_two_aggregations_write_onto_one_label_and_verify(
    sakila: tuple[Settings, Project], neo4j_settings: Neo4jSettings
) -> None:
    """Payments and rentals per customer onto the same `chariot init` label (no sync of the
    graph: the write MERGEs the nodes); the verification reads them back."""
    settings, project = sakila
    settings = settings.model_copy(update={"neo4j": neo4j_settings})
    [label] = [name for name, node in project.graph.nodes.items() if node.table == "customer"]
    rentals = Aggregation.model_validate(
        {
            "table": "rental",
            "group_by": "customer_id",
            "time_column": "rental_date",
            "statistics": {"rental_count": "count", "last_rental_at": "latest"},
            "label": label,
        }
    )
    payments = project.aggregations["customer_payments"].model_copy(update={"label": label})
    labelled = project.model_copy(
        update={
            "aggregations": {
                "customer_payments": payments,
                "customer_rentals": rentals,
            }
        }
    )
    result = run_aggregation(settings, workers=1, project=labelled)
    assert result.graph_status == "done", result.graph_error
    assert result.graph_nodes_written == 599  # one node per customer, both summaries on it
    check = check_summaries(settings, project=labelled)
    assert check.ok, check.model_dump_json(indent=1)
    assert {t.name for t in check.tables} >= {f"neo4j:{label}:customer_rentals"}
    key = project.graph.nodes[label].key[0] if project.graph.nodes[label].key else "customer_id"
    with neo4j_session(neo4j_settings) as session:
        node = session.run(f"MATCH (n:{label} {{{key}: 1}}) RETURN properties(n) AS p").single()[
            "p"
        ]
    assert node["payments"] == 32 and node["rentalCount"] == 32
    assert isinstance(node["total"], float) and len(node["byRange"]) == 5
    assert node["firstPayment"].to_native() == datetime(2005, 5, 25, 11, 30, 37)
