"""Least-privilege roles: a PostgreSQL role that owns its schema but may not CREATE in the
database, and a MySQL user with SELECT only on the source database (#9 symptom 6).

The PostgreSQL role is a real role created here when the test's login may create roles;
otherwise (the project's own servers: a CREATEDB role without CREATEROLE) the test's login
gives up CREATE on a database of its own, which is the same restriction on the same login.
Either way the precondition is checked, so the test cannot pass vacuously.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from chariot.config import MySQLSettings, PostgresSettings, Settings
from chariot.connections import first_value, mysql_connect, postgres_connection
from chariot.seed import seed_synthetic
from tests.servers import Servers

pytestmark = pytest.mark.integration

RESTRICTED_PASSWORD = "Least-Privilege-1"


def can_create_roles(admin: Any) -> bool:
    row = admin.execute(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    return bool(first_value(row))


@pytest.fixture
def restricted_postgres(servers: Servers) -> Iterator[PostgresSettings]:
    """A database of its own with a schema owned by a login that may not CREATE there."""
    suffix = uuid.uuid4().hex[:12]
    database, schema, role = f"chariot_t_{suffix}", f"chariot_t_{suffix}", f"chariot_r_{suffix}"
    with postgres_connection(servers.postgres, autocommit=True) as admin:
        own_role = not can_create_roles(admin)
        admin.execute(f'CREATE DATABASE "{database}"')
        if not own_role:
            admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{RESTRICTED_PASSWORD}'")
    in_database = servers.postgres.model_copy(update={"database": database, "schema_name": schema})
    if own_role:
        restricted = in_database
    else:
        restricted = in_database.model_copy(
            update={"user": role, "password": SecretStr(RESTRICTED_PASSWORD)}
        )
    try:
        with postgres_connection(in_database, autocommit=True) as admin:
            admin.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{restricted.user}"')
            admin.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC')
            admin.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM "{restricted.user}"')
        with postgres_connection(restricted) as connection:
            may_create = connection.execute(
                "SELECT has_database_privilege(current_database(), 'CREATE')"
            ).fetchone()
            assert first_value(may_create) is False, "the restriction did not take"
        yield restricted
    finally:
        with postgres_connection(servers.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            if not own_role:
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def select_only_mysql(servers: Servers, mysql_settings: MySQLSettings) -> Iterator[MySQLSettings]:
    """A MySQL user with SELECT on the test's source database and nothing else."""
    user = f"chariot_r_{uuid.uuid4().hex[:12]}"
    admin = mysql_connect(servers.mysql)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{RESTRICTED_PASSWORD}'")
            cursor.execute(f"GRANT SELECT ON `{mysql_settings.database}`.* TO '{user}'@'%'")
        yield mysql_settings.model_copy(
            update={"user": user, "password": SecretStr(RESTRICTED_PASSWORD)}
        )
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()


@pytest.fixture
def restricted(
    sql_settings: Settings,
    mysql_settings: MySQLSettings,
    select_only_mysql: MySQLSettings,
    restricted_postgres: PostgresSettings,
) -> Settings:
    seed_synthetic(mysql_settings, 3_000, seed=7)  # as the admin: the source's owner loads it
    run = sql_settings.run.model_copy(update={"sinks": ["postgres"], "workers": 1})
    return sql_settings.model_copy(
        update={"mysql": select_only_mysql, "postgres": restricted_postgres, "run": run}
    )


def test_the_source_user_may_only_select(select_only_mysql: MySQLSettings) -> None:
    connection = mysql_connect(select_only_mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW GRANTS")
            grants = " ".join(str(row[0]) for row in cursor.fetchall())
    finally:
        connection.close()
    assert "GRANT SELECT ON" in grants and "ALL PRIVILEGES" not in grants


@pytest.mark.parametrize("command", ["audit", "status", "sync", "aggregate"])
def test_each_command_first_on_a_restricted_schema_runs_without_a_privilege_error(
    cli: Any, restricted: Settings, command: str
) -> None:
    options = ["--no-graph"] if command == "aggregate" else []
    result = cli(command, *options, "--json", settings=restricted)
    assert "Traceback" not in result.output
    assert "permission denied" not in result.output.lower(), result.output
    assert "denied" not in result.output.lower(), result.output
    # audit: differences (empty sinks); aggregate: nothing synced yet is its own error
    allowed = {"audit": {1}, "status": {0}, "sync": {0}, "aggregate": {0, 6}}[command]
    assert result.exit_code in allowed, result.output


def test_every_command_works_with_least_privilege_roles(cli: Any, restricted: Settings) -> None:
    for command in (
        ["sync"],
        ["aggregate", "--no-graph"],
        ["audit"],
        ["status"],
        ["sync"],  # a second time: the schema and tables exist now
        ["run"],
    ):
        result = cli(*command, "--json", settings=restricted)
        assert result.exit_code == 0, (command, result.output)
        assert json.loads(result.stdout)["ok"] is True
