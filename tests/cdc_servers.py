"""Private MariaDB servers for change-capture tests that change server-wide state.

Tests of the preconditions flip GLOBAL settings (binlog_format, binlog_row_image,
binlog_row_metadata) and purge binary logs: on the shared test server that would break
everyone else's change capture. So these tests get their own servers, started here from
the same Debian binaries and with the same options as ``scripts/services.sh`` (own data
directory under a temporary directory, own free port and socket, root by unix socket, a
password user with the grants change capture needs), and stopped at the end of the session:

- ``binlog_off_server``: the binary log OFF;
- ``binlog_on_server``: the binary log ON as services.sh starts it (ROW, FULL, FULL, a
  server id). Tests may change its dynamic GLOBAL settings (``server.global_settings``
  restores them) and purge its logs.

Without the binaries the tests skip, or fail under CHARIOT_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from chariot.config import MySQLSettings
from chariot.connections import mysql_connect
from tests.servers import unavailable

MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = "mariadb-install-db"
CLIENT = "mariadb"
START_SECONDS = 60

# The options scripts/services.sh starts MariaDB with (mariadb_start), minus its sizes: a
# test server holds a few rows, and the machine is shared.
COMMON_OPTIONS = (
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--local-infile=1",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
    "--default-time-zone=+00:00",
    "--max-connections=100",
    "--max-allowed-packet=64M",
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=16M",
)
# As services.sh: row events with both full row images and the column names.
BINLOG_OPTIONS = (
    "--server-id=1",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
)
CAPTURE_SETTINGS = ("binlog_format", "binlog_row_image", "binlog_row_metadata")


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass
class PrivateMariaDB:
    """One private MariaDB server; ``settings`` logs in as its password user."""

    name: str
    directory: Path
    binlog: bool
    port: int = field(default_factory=_free_port)
    password: str = field(default_factory=lambda: "cdc-" + secrets.token_hex(12))
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "run" / "mariadb.sock"

    @property
    def settings(self) -> MySQLSettings:
        return MySQLSettings(
            host="127.0.0.1",
            port=self.port,
            user="chariot_cdc",
            password=SecretStr(self.password),
            database="chariot_cdc",
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        data = self.directory / "data"
        for sub in ("run", "logs", "binlog"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        user = _os_user()
        self._run(
            [
                INSTALL_DB,
                "--no-defaults",
                f"--datadir={data}",
                f"--user={user}",
                "--auth-root-authentication-method=socket",
                f"--auth-root-socket-user={user}",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            log="install-db.log",
        )
        options = [
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.directory / 'run' / 'mariadbd.pid'}",
            f"--log-error={self.directory / 'logs' / 'mariadbd.log'}",
            f"--port={self.port}",
            *COMMON_OPTIONS,
        ]
        if self.binlog:
            options += [*BINLOG_OPTIONS, f"--log-bin={self.directory / 'binlog' / 'binlog'}"]
        else:
            options.append("--skip-log-bin")
        if os.geteuid() == 0:
            options.append("--user=root")
        self.process = subprocess.Popen(
            [str(MARIADBD), *options],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a ^C of pytest must not kill it before teardown
        )
        deadline = time.monotonic() + START_SECONDS
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self._log_tail()}")
            time.sleep(0.2)
        self.admin_sql(self._bootstrap_sql())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def _bootstrap_sql(self) -> str:
        # What services.sh's mariadb_bootstrap grants its user, named grants included.
        password = _quote(self.password)
        sql = "DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES;"
        for host in ("127.0.0.1", "localhost"):
            sql += (
                f"CREATE USER 'chariot_cdc'@'{host}' IDENTIFIED VIA mysql_native_password "
                f"USING PASSWORD({password});"
                f"GRANT ALL PRIVILEGES ON *.* TO 'chariot_cdc'@'{host}' WITH GRANT OPTION;"
                "GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* "
                f"TO 'chariot_cdc'@'{host}';"
            )
        sql += "CREATE DATABASE chariot_cdc CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
        return sql + "FLUSH PRIVILEGES;"

    # ------------------------------------------------------------------ helpers

    def admin_sql(self, sql: str) -> str:
        """Run SQL as root over the socket (unix_socket auth), as services.sh does."""
        done = self._client(["-N", "-e", sql])
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: {sql[:80]}... failed: {done.stderr.strip()}")
        return done.stdout

    def _client(self, arguments: list[str]) -> subprocess.CompletedProcess[str]:
        command = [CLIENT, "--no-defaults", f"--socket={self.socket_path}", "-u", _os_user()]
        return subprocess.run(
            command + arguments, capture_output=True, text=True, timeout=60, check=False
        )

    def _answers(self) -> bool:
        return self.socket_path.exists() and self._client(["-N", "-e", "SELECT 1"]).returncode == 0

    def _run(self, command: list[str], *, log: str) -> None:
        path = self.directory / "logs" / log
        with open(path, "wb") as output:
            done = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: {command[0]} failed:\n{path.read_text()[-2000:]}")

    def _log_tail(self) -> str:
        path = self.directory / "logs" / "mariadbd.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def connect(self, **options: Any) -> Any:
        return mysql_connect(self.settings, **options)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        connection = self.connect(autocommit=True)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def execute(self, *statements: str, database: str | None = None) -> None:
        """Each statement in its own autocommit transaction, as the password user."""
        settings = self.settings
        if database is not None:
            settings = settings.model_copy(update={"database": database})
        connection = mysql_connect(settings, autocommit=True)
        try:
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()

    @contextmanager
    def global_settings(self, **values: str) -> Iterator[None]:
        """SET GLOBAL each value for the block (new sessions see it), restored after."""
        names = ", ".join(f"@@GLOBAL.{name}" for name in values)
        (before,) = self.query(f"SELECT {names}")
        try:
            self.execute(*(f"SET GLOBAL {name} = '{value}'" for name, value in values.items()))
            yield
        finally:
            self.execute(
                *(
                    f"SET GLOBAL {name} = '{value}'"
                    for name, value in zip(values, before, strict=True)
                )
            )

    @contextmanager
    def database(self) -> Iterator[MySQLSettings]:
        """A fresh database on this server, dropped afterwards."""
        name = f"chariot_t_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        try:
            yield self.settings.model_copy(update={"database": name})
        finally:
            self.execute(f"DROP DATABASE IF EXISTS `{name}`")

    @contextmanager
    def reader_without_replication(self, database: str) -> Iterator[MySQLSettings]:
        """A user who may read ``database`` and nothing more: no replication grants."""
        user = f"noreplica_{uuid.uuid4().hex[:8]}"
        password = "np-" + secrets.token_hex(12)
        hosts = ("127.0.0.1", "localhost")
        self.execute(
            *(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY {_quote(password)}" for host in hosts),
            *(f"GRANT SELECT, SHOW VIEW ON `{database}`.* TO '{user}'@'{host}'" for host in hosts),
        )
        try:
            yield self.settings.model_copy(
                update={"user": user, "password": SecretStr(password), "database": database}
            )
        finally:
            self.execute(*(f"DROP USER IF EXISTS '{user}'@'{host}'" for host in hosts))


def _os_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _missing_binaries() -> str | None:
    if not MARIADBD.exists():
        return f"{MARIADBD} is missing (apt-get install mariadb-server)"
    for program in (INSTALL_DB, CLIENT):
        if shutil.which(program) is None:
            return f"{program} is not on PATH (apt-get install mariadb-server mariadb-client)"
    return None


@contextmanager
def _private_server(name: str, *, binlog: bool) -> Iterator[PrivateMariaDB]:
    missing = _missing_binaries()
    if missing is not None:
        unavailable(f"a private MariaDB for {name} cannot start: {missing}")
    # Short path: a unix socket path must fit in 108 bytes.
    directory = Path(tempfile.mkdtemp(prefix=f"chariot-{name}-"))
    server = PrivateMariaDB(name, directory, binlog)
    try:
        try:
            server.start()
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            unavailable(f"the private MariaDB {name} did not start: {error}")
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def binlog_off_server() -> Iterator[PrivateMariaDB]:
    """A private MariaDB with the binary log OFF."""
    with _private_server("binlog-off", binlog=False) as server:
        yield server


@pytest.fixture(scope="session")
def binlog_on_server() -> Iterator[PrivateMariaDB]:
    """A private MariaDB with the binary log ON (ROW/FULL/FULL) that tests may reconfigure
    (``global_settings``) and purge."""
    with _private_server("binlog-on", binlog=True) as server:
        yield server
