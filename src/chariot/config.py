"""Settings: one object, nested per database, read from CHARIOT_* variables and a .env file.

Passwords are ``SecretStr`` so they never reach a repr, a log line or an error message;
every URL we show goes through ``display_url`` which redacts them.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote_plus, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from chariot.errors import ConfigError
from chariot.redaction import register_secret, register_url_secrets

ENV_PREFIX = "CHARIOT_"
NESTED_DELIMITER = "__"


class _Section(BaseModel):
    # inf and nan would pass ``ge=0`` checks and poison every computation downstream.
    model_config = ConfigDict(allow_inf_nan=False)


def _registered(password: SecretStr) -> SecretStr:
    register_secret(password.get_secret_value())
    return password


# A password is masked in every message from the moment settings hold it (chariot.redaction).
Password = Annotated[SecretStr, AfterValidator(_registered)]


@dataclass(frozen=True)
class SourceAddress:
    """Where the source is: resolved once, from ``CHARIOT_MYSQL__URL`` or else the fields.

    Every command connects through this (SQLAlchemy engines and pymysql connections alike),
    so two commands can never read two different databases.
    """

    url: str = field(repr=False)  # with the password: only for connecting
    display: str  # the same URL with the password masked
    drivername: str
    host: str | None
    port: int | None
    user: str | None
    password: str | None = field(repr=False)
    database: str | None
    query: dict[str, str]

    @property
    def is_mysql(self) -> bool:
        return self.drivername.split("+", 1)[0] in ("mysql", "mariadb")


class MySQLSettings(_Section):
    """The source database (MySQL 8 or MariaDB), or any SQLAlchemy URL via ``url``."""

    host: str = "127.0.0.1"
    port: int = Field(3306, ge=1, le=65535)
    user: str = "chariot"
    password: Password = Field(SecretStr("chariot-mysql"), validate_default=True)
    database: str = "movielens"
    url: str | None = Field(
        None, description="Any SQLAlchemy URL; overrides host/port/user/password/database."
    )
    fast_driver: bool = Field(
        True,
        description="Read through mysqlclient (C, the chariot[fast] extra) when it is installed"
        " and the source is reached through PyMySQL on this machine (loopback: mysqlclient"
        " does not use TLS); False: always PyMySQL.",
    )
    arrow_reader: bool = Field(
        True,
        description="Read each page into Arrow through connectorx (the chariot[fast] extra)"
        " when it is installed, the source is on this machine (loopback: connectorx does not"
        " use TLS) and every column of the table reads exactly; False: row by row.",
    )

    @field_validator("url", mode="before")
    @classmethod
    def _remember_url_password(cls, value: Any) -> Any:
        # Before parsing: a URL that does not parse must not leak its password either.
        if isinstance(value, str):
            register_url_secrets(value)
        return value

    @field_validator("url")
    @classmethod
    def _parsable_url(cls, value: str | None) -> str | None:
        if value:
            address = _address_from_url(value)  # raises ValueError, never quoting the value
            if address.is_mysql and not address.database:
                raise ValueError("a MySQL/MariaDB URL must end with /DATABASE")
        return value or None

    def address(self) -> SourceAddress:
        """The one resolution of URL-or-fields; cheap, so computed on demand (copies of these
        settings with another ``url`` or ``database`` must never see a stale answer)."""
        if self.url:
            try:
                return _address_from_url(self.url)
            except ValueError as error:  # settings built in code skip the validator
                raise ConfigError(f"invalid setting CHARIOT_MYSQL__URL: {error}") from None
        password = self.password.get_secret_value()
        return SourceAddress(
            url=(
                f"mysql+pymysql://{quote_plus(self.user)}:{quote_plus(password)}@"
                f"{self.host}:{self.port}/{self.database}?charset=utf8mb4&local_infile=1"
            ),
            display=f"mysql://{self.user}:***@{self.host}:{self.port}/{self.database}",
            drivername="mysql+pymysql",
            host=self.host,
            port=self.port,
            user=self.user,
            password=password,
            database=self.database,
            query={},
        )

    def sqlalchemy_url(self) -> str:
        return self.address().url

    def display_url(self) -> str:
        return self.address().display

    @property
    def is_mysql(self) -> bool:
        return self.address().is_mysql


def _address_from_url(url: str) -> SourceAddress:
    from sqlalchemy.engine import make_url  # only when a URL is configured

    try:
        parsed = make_url(url)
        port = parsed.port  # may raise on a port that is not a number
    except Exception:  # ArgumentError, ValueError: their messages quote the URL, password too
        raise ValueError(
            "not a valid SQLAlchemy URL like mysql+pymysql://user:password@host:3306/database"
            " (percent-encode @, : and / in the password)"
        ) from None
    register_secret(parsed.password)
    return SourceAddress(
        url=url,
        display=parsed.render_as_string(hide_password=True),
        drivername=parsed.drivername,
        host=parsed.host,
        port=port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
        query={key: str(value) for key, value in parsed.query.items()},
    )


# PostgreSQL's own default rows per transaction, measured on 1M ratings (first load, Arrow
# reader): fewer, larger COPY transactions cost less per row than 10,000-row ones, and
# Neo4j, whose transactions are best at 10,000 rows, keeps the run's default.
POSTGRES_BATCH_ROWS = 50_000


class PostgresSettings(_Section):
    """The analytics PostgreSQL sink."""

    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)
    user: str = "chariot"
    password: Password = Field(SecretStr("chariot-postgres"), validate_default=True)
    database: str = "chariot"
    schema_name: str = Field("chariot", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    batch_size: int | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="rows per PostgreSQL transaction in a keyset sync "
        "(CHARIOT_POSTGRES__BATCH_SIZE); default: CHARIOT_RUN__BATCH_SIZE when that is set, "
        f"else {POSTGRES_BATCH_ROWS:,}",
    )

    def connect_kwargs(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password.get_secret_value(),
            "dbname": self.database,
            "connect_timeout": 10,
            "application_name": "chariot",
        }

    def display_url(self) -> str:
        return f"postgresql://{self.user}:***@{self.host}:{self.port}/{self.database}"


class Neo4jSettings(_Section):
    """The graph sink."""

    uri: str = "bolt://127.0.0.1:7687"
    user: str = "neo4j"
    password: Password = Field(SecretStr("chariot-neo4j"), validate_default=True)
    database: str = "neo4j"
    batch_size: int | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="rows per Neo4j transaction in a keyset sync (CHARIOT_NEO4J__BATCH_SIZE); "
        "default: CHARIOT_RUN__BATCH_SIZE",
    )
    max_changes_per_transaction: int = Field(
        20_000,
        gt=0,
        le=10_000_000,
        description="the most row changes change capture applies in one Neo4j transaction "
        "(CHARIOT_NEO4J__MAX_CHANGES_PER_TRANSACTION): Neo4j caps a transaction's memory, so "
        "a larger source transaction is applied in chunks of this many changes, the log "
        "position recording how far into it the graph got",
    )

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        register_url_secrets(value)
        schemes = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
        if urlsplit(value).scheme not in schemes:
            raise ValueError(f"must start with one of {', '.join(s + '://' for s in schemes)}")
        return value

    def display_url(self) -> str:
        return f"{redact_url(self.uri)} (user {self.user})"


class RunSettings(_Section):
    """How a run behaves: batch sizes, sinks, retries, aggregation workers."""

    batch_size: int = Field(10_000, gt=0, le=1_000_000)
    queue_batches: int = Field(4, gt=0, le=1000)
    # NoDecode: the env value is "postgres,neo4j" (split below), not JSON.
    sinks: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["postgres", "neo4j"])
    max_attempts: int = Field(4, ge=1, le=100)
    workers: int = Field(2, ge=1, le=256)
    partition_rows: int = Field(50_000, gt=0)
    lease_seconds: int = Field(120, ge=5)
    lease_wait_seconds: float = Field(
        0.0, ge=0, le=86_400, description="how long a writer waits for a busy lease (--wait)"
    )
    partition_attempts: int = Field(3, ge=1, le=100)
    audit_readers: int = Field(
        2,
        ge=1,
        le=16,
        description="concurrent checksum queries per server and table in an audit",
    )
    # Aggregation executor: auto = inline for 1 worker, else a local process pool; dask
    # runs the same partition tasks on the Dask scheduler at `scheduler` ("" = none).
    executor: Literal["auto", "inline", "process", "dask"] = "auto"
    scheduler: str = ""
    # How `chariot sync` finds changes: cdc reads the binary log (updates and deletes
    # too), keyset copies rows above each checkpoint, auto = cdc where the source allows.
    mode: Literal["auto", "keyset", "cdc"] = Field(
        "auto",
        description="sync mode: auto (change capture where the source allows it), keyset, cdc",
    )
    # How change capture makes a table's first copy: copy = a keyset copy before the log is
    # applied (read and replication grants only); watermark = DBLog chunks read while the
    # log is applied (needs INSERT, UPDATE on `watermark_table` in the source database).
    snapshot: Literal["copy", "watermark"] = Field(
        "copy",
        description="first copy under change capture: copy (before the log), or watermark "
        "(DBLog chunks while the log is applied; needs the watermark table)",
    )
    watermark_table: str = Field(
        "chariot_watermarks",
        pattern=r"^[A-Za-z0-9_$]{1,64}$",
        description="the source table watermark snapshots write into (created by an admin)",
    )

    @field_validator("sinks", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    mysql: MySQLSettings = Field(default_factory=MySQLSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    neo4j: Neo4jSettings = Field(default_factory=Neo4jSettings)
    run: RunSettings = Field(default_factory=RunSettings)


def sink_batch_size(settings: Settings, sink: str) -> int:
    """Rows per transaction for ``sink`` in a keyset sync: the sink's own setting
    (``CHARIOT_POSTGRES__BATCH_SIZE``, ``CHARIOT_NEO4J__BATCH_SIZE``), else the run's
    ``batch_size`` when it was set (environment, ``--batch-size``), else the sink's measured
    default (PostgreSQL: ``POSTGRES_BATCH_ROWS``; every other sink: the run's default)."""
    section = getattr(settings, sink, None)
    own = getattr(section, "batch_size", None) if isinstance(section, _Section) else None
    if isinstance(own, int):
        return own
    if sink == "postgres" and "batch_size" not in settings.run.model_fields_set:
        return POSTGRES_BATCH_ROWS
    return settings.run.batch_size


def with_batch_size(settings: Settings, rows: int) -> Settings:
    """``sync --batch-size``: ``rows`` per batch for the run and every sink. An option given
    on the command line beats the environment, a sink's own batch size included."""
    update: dict[str, Any] = {"run": settings.run.model_copy(update={"batch_size": rows})}
    for name, section in settings:
        if isinstance(section, _Section) and "batch_size" in type(section).model_fields:
            update[name] = section.model_copy(update={"batch_size": rows})
    return settings.model_copy(update=update)


def load_settings(env_file: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from the environment and ``env_file`` (default ``./.env`` if present).

    Raises ``ConfigError`` naming the first bad key as its environment variable.
    """
    if env_file is not None and not env_file.is_file():
        raise ConfigError(f"--env-file {env_file}: no such file")
    try:
        if env_file is not None:
            return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe_validation_error(error)) from None
    except SettingsError as error:
        # Raised before validation, e.g. CHARIOT_MYSQL='not json' for a whole nested section.
        raise ConfigError(_describe_settings_error(error)) from None
    except UnicodeDecodeError as error:
        byte = error.object[error.start : error.start + 1].hex()
        raise ConfigError(
            f"{env_file or Path('.env')}: not UTF-8 text (byte 0x{byte} at offset "
            f"{error.start}); save it as UTF-8"
        ) from None


# CHARIOT_* names the project documents that are not settings: read by the CLI
# (--env-file), the project file, the test suite, the service scripts and the example plugin.
DOCUMENTED_NAMES = frozenset(
    ENV_PREFIX + name
    for name in (
        "ENV_FILE",
        "PROJECT",
        "MOVIELENS_DIR",
        "REQUIRE_SERVICES",
        "CRASH_SEED",
        "TEST_PAUSE_AFTER_BATCHES",
        "TEST_PAUSE_MARKER",
        "SERVICES_DIR",
        "SERVICES_PYTHON",
        "JAVA",
        "CSV_SINK_DIR",
        "BENCH_NAME",  # the benchmarks' own database and schema names (bench/)
        "CDC_MYSQL__HOST",  # the change-capture tests' server (tests/cdc_support.py)
        "CDC_MYSQL__PORT",
        "CDC_MYSQL__USER",
        "CDC_MYSQL__PASSWORD",
    )
)


@dataclass(frozen=True)
class UnknownSetting:
    """A ``CHARIOT_*`` name that no setting reads (pydantic-settings ignores it silently)."""

    name: str  # upper case: settings are matched case-insensitively
    origin: str  # "environment" or the .env file
    suggestion: str | None  # the setting it most likely meant

    def message(self) -> str:
        meant = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"{self.name} ({self.origin}) is not a setting and is ignored{meant}"


def setting_names() -> frozenset[str]:
    """Every variable a setting reads: each section (as JSON) and each of its fields."""
    names: set[str] = set()
    for section, info in Settings.model_fields.items():
        prefix = ENV_PREFIX + section.upper()
        names.add(prefix)
        model = info.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        names.update(f"{prefix}{NESTED_DELIMITER}{name.upper()}" for name in model.model_fields)
    return frozenset(names)


def unknown_settings(env_file: Path | None = None) -> list[UnknownSetting]:
    """Names in the environment or the .env file that look meant for a setting but match
    none: close to a real one, or inside a section (``CHARIOT_RUN__*``). The caller warns."""
    known = setting_names()
    sections = tuple(f"{ENV_PREFIX}{s.upper()}{NESTED_DELIMITER}" for s in Settings.model_fields)
    found: dict[str, UnknownSetting] = {}
    for origin, names in _configured_names(env_file):
        for name in (n.upper() for n in names):
            if not name.startswith(ENV_PREFIX) or name in known | DOCUMENTED_NAMES:
                continue
            suggestion = _likely_name(name, known)
            if name not in found and (suggestion or name.startswith(sections)):
                found[name] = UnknownSetting(name, origin, suggestion)
    return list(found.values())


def _configured_names(env_file: Path | None) -> list[tuple[str, list[str]]]:
    from dotenv import dotenv_values

    sources = [("environment", sorted(os.environ))]
    path = env_file or Path(".env")
    if path.is_file():
        sources.append((str(path), list(dotenv_values(path, encoding="utf-8"))))
    return sources


def _likely_name(name: str, known: frozenset[str]) -> str | None:
    # Compared without the common prefix, which would make every name look alike.
    tails = {setting.removeprefix(ENV_PREFIX): setting for setting in known}
    close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), list(tails), n=1, cutoff=0.75)
    return tails[close[0]] if close else None


def _describe_validation_error(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ENV_PREFIX + NESTED_DELIMITER.join(str(part) for part in first["loc"]).upper()
    message = str(first["msg"]).removeprefix("Value error, ")
    more = len(error.errors()) - 1
    suffix = f" (and {more} more invalid setting{'s' if more > 1 else ''})" if more else ""
    return f"invalid setting {key}: {message}{suffix}"


def _describe_settings_error(error: SettingsError) -> str:
    """Name the variable from pydantic-settings' 'error parsing value for field "x"' text."""
    match = re.search(r'field "([^"]+)"', str(error))
    key = ENV_PREFIX + match.group(1).upper() if match else f"{ENV_PREFIX}*"
    return f"invalid setting {key}: value could not be parsed (nested sections take JSON)"


def redact_url(url: str) -> str:
    """Replace the password of a URL with ``***``; leave everything else readable."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
