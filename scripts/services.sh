#!/usr/bin/env bash
# Start/stop the three real database servers Chariot's tests and demo use, without Docker:
#   MariaDB (Debian package, own datadir), PostgreSQL (Debian package, own cluster) and
#   Neo4j 5.26 Community (jars from Maven Central, started with Java 17/21).
#
#   scripts/services.sh up        start what is not running, wait until each answers a query
#   scripts/services.sh down      stop what `up` started (pid files), wait for exit
#   (`up`/`down` take server names to act on only those: `scripts/services.sh up mariadb`)
#   scripts/services.sh status    one line per server
#   scripts/services.sh install   only install missing packages and fetch the Neo4j jars
#   scripts/services.sh build-deps [PYTHON]   the compiler and headers chariot[fast] builds with
#
# Settings: CHARIOT_MYSQL__*, CHARIOT_POSTGRES__*, CHARIOT_NEO4J__* from the environment,
# else .env, else .env.example (see scripts/env.sh). All state lives in .services/
# (override with CHARIOT_SERVICES_DIR). Tunables: NEO4J_VERSION, NEO4J_HEAP, NEO4J_PAGECACHE,
# NEO4J_START_TIMEOUT (seconds), CHARIOT_JAVA (path of a Java 17 or 21 `java`),
# MARIADB_BUFFER_POOL (InnoDB buffer pool, default 256M: a 25M-rating source needs ~1.5G to
# be audited from memory; see docs/performance.md, "Audit").
# MariaDB runs with the binary log on (ROW, full row images and metadata) for change capture:
# the logs live in .services/mariadb/binlog and expire after MARIADB_BINLOG_EXPIRE_SECONDS
# (default 3 days). A restart of an existing data dir applies these settings.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
SVC="${CHARIOT_SERVICES_DIR:-$ROOT/.services}"
PY="${CHARIOT_SERVICES_PYTHON:-$ROOT/.venv/bin/python}"   # needs pymysql, psycopg, neo4j
WAIT_READY="$ROOT/scripts/wait_ready.py"

eval "$("$ROOT/scripts/env.sh" MYSQL POSTGRES NEO4J)"

NEO4J_VERSION="${NEO4J_VERSION:-5.26.30}"
NEO4J_HEAP="${NEO4J_HEAP:-1g}"
NEO4J_PAGECACHE="${NEO4J_PAGECACHE:-512m}"
# A dev/test server keeps little history: Neo4j's default retention ("2 days") let a day of
# test and bench runs fill 36 GB with transaction logs here. Pruned at each checkpoint.
NEO4J_TX_LOG_RETENTION="${NEO4J_TX_LOG_RETENTION:-1G size}"
NEO4J_START_TIMEOUT="${NEO4J_START_TIMEOUT:-240}"

MY_PORT="${CHARIOT_MYSQL__PORT:-3306}"
MY_USER="${CHARIOT_MYSQL__USER:-chariot}"
MY_PASS="${CHARIOT_MYSQL__PASSWORD:-}"
MY_DB="${CHARIOT_MYSQL__DATABASE:-movielens}"
PG_PORT="${CHARIOT_POSTGRES__PORT:-5432}"
PG_USER="${CHARIOT_POSTGRES__USER:-chariot}"
PG_PASS="${CHARIOT_POSTGRES__PASSWORD:-}"
PG_DB="${CHARIOT_POSTGRES__DATABASE:-chariot}"
N4_URI="${CHARIOT_NEO4J__URI:-bolt://127.0.0.1:7687}"
N4_USER="${CHARIOT_NEO4J__USER:-neo4j}"
N4_PASS="${CHARIOT_NEO4J__PASSWORD:-}"
n4_hostport="${N4_URI#*://}"
n4_hostport="${n4_hostport%%/*}"
n4_hostport="${n4_hostport%%\?*}"
if [[ "$n4_hostport" == *:* ]]; then N4_PORT="${n4_hostport##*:}"; else N4_PORT=7687; fi

MY_DIR="$SVC/mariadb"
MY_DATA="$MY_DIR/data"
MY_SOCK="$MY_DIR/run/mariadb.sock"
MY_PIDF="$MY_DIR/run/mariadbd.pid"
MY_LOG="$MY_DIR/logs/mariadbd.log"
MY_BINLOG_DIR="$MY_DIR/binlog"
MY_BINLOG_EXPIRE="${MARIADB_BINLOG_EXPIRE_SECONDS:-259200}"
MY_BUFFER_POOL="${MARIADB_BUFFER_POOL:-256M}"

PG_DIR="$SVC/postgres"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"
PG_LOG="$PG_DIR/logs/postgres.log"

N4_HOME="$SVC/neo4j"
N4_LIB="$N4_HOME/lib"
N4_CONF="$N4_HOME/conf"
N4_PIDF="$N4_HOME/run/neo4j.pid"
N4_LOG="$N4_HOME/logs/console.log"

if ((EUID == 0)); then
    PG_OS_USER=postgres         # initdb/postgres refuse to run as root
    SUDO=()
else
    PG_OS_USER="$(id -un)"
    SUDO=(sudo)
fi

say() { printf '[services] %s\n' "$*" >&2; }
die() { printf 'services.sh: error: %s\n' "$*" >&2; exit 1; }

log_tail() {  # file [lines]
    local f="$1" n="${2:-30}"
    if [[ -s "$f" ]]; then
        printf -- '----- last %s lines of %s -----\n' "$n" "$f" >&2
        tail -n "$n" "$f" >&2
        printf -- '-----\n' >&2
    else
        printf '(no log at %s)\n' "$f" >&2
    fi
}

# ---------------------------------------------------------------- generic helpers

# Print the pid from a pid file if that process is alive and its command line contains
# MARKER (so a recycled pid or a foreign server never counts as "ours").
pid_if_ours() {
    local file="$1" marker="$2" pid
    [[ -r "$file" ]] || return 1
    pid="$(head -n1 "$file" 2>/dev/null | tr -dc '0-9')"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker" || return 1
    printf '%s\n' "$pid"
}

port_in_use() {  # port -> 0 if something accepts TCP connections on 127.0.0.1:port
    timeout 2 bash -c ": </dev/tcp/127.0.0.1/$1" 2>/dev/null
}

wait_pid_exit() {  # pid seconds
    local pid="$1" secs="$2" i
    for ((i = 0; i < secs * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    return 1
}

sql_str() {  # MariaDB string literal
    local s="${1//\\/\\\\}"
    printf "'%s'" "${s//\'/\'\'}"
}
sql_ident() { printf "\`%s\`" "${1//\`/\`\`}"; }

have_py_driver() {  # module
    [[ -x "$PY" ]] && "$PY" -c "import $1" 2>/dev/null
}

# ---------------------------------------------------------------- packages

APT_UPDATED=0
apt_install() {  # packages... (only the missing ones are installed)
    local missing=() p rc=0 guard=0
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
    if ((EUID != 0)) && ! command -v sudo >/dev/null; then
        die "missing packages ${missing[*]}: run as root or install them"
    fi
    say "installing ${missing[*]} (apt-get)"
    # Keep the packaged services from auto-starting on the default ports (3306/5432):
    # we run our own servers. Only when no policy is in place already.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        guard=1
    fi
    if ((APT_UPDATED == 0)); then
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq || rc=$?
        APT_UPDATED=1
    fi
    if ((rc == 0)); then
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
            install -y -qq --no-install-recommends "${missing[@]}" >&2 || rc=$?
    fi
    ((guard)) && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || die "apt-get failed to install ${missing[*]} (exit $rc)"
}

find_java() {  # prints a Java 17 or 21 `java` (Neo4j 5.26 runs on nothing else)
    local c
    local -a cands=()
    [[ -n "${CHARIOT_JAVA:-}" ]] && cands+=("$CHARIOT_JAVA")
    cands+=(/usr/lib/jvm/java-17-openjdk-*/bin/java)
    if command -v update-alternatives >/dev/null; then
        mapfile -t -O "${#cands[@]}" cands < <(update-alternatives --list java 2>/dev/null || true)
    fi
    cands+=(/usr/lib/jvm/java-21-openjdk-*/bin/java)
    for c in "${cands[@]}"; do
        [[ -x "$c" ]] || continue
        if "$c" -version 2>&1 | head -n1 | grep -Eq 'version "(17|21)([."]|$)'; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    return 1
}

pg_bindir() {
    local v
    if [[ -r "$PG_DATA/PG_VERSION" ]]; then
        v="$(cat "$PG_DATA/PG_VERSION")"
        [[ -x "/usr/lib/postgresql/$v/bin/postgres" ]] && { echo "/usr/lib/postgresql/$v/bin"; return 0; }
        die "$PG_DATA was created by PostgreSQL $v, which is not installed (apt-get install postgresql-$v, or remove $PG_DIR)"
    fi
    v="$(printf "%s\n" /usr/lib/postgresql/*/bin/initdb | grep -v "[*]" | sort -V | tail -n1 || true)"
    [[ -n "$v" ]] || return 1
    dirname "$v"
}

install_packages() {
    local pkgs=()
    [[ -x /usr/sbin/mariadbd && -x /usr/bin/mariadb-install-db ]] || pkgs+=(mariadb-server)
    command -v mariadb >/dev/null || pkgs+=(mariadb-client)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || pkgs+=(postgresql)
    find_java >/dev/null || pkgs+=(openjdk-17-jre-headless)
    if ! neo4j_jars_ok && ! command -v mvn >/dev/null; then pkgs+=(maven); fi
    ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
    JAVA="$(find_java)" || die "no Java 17/21 found even after installing openjdk-17-jre-headless"
}

# ---------------------------------------------------------------- MariaDB

mariadb_pid() { pid_if_ours "$MY_PIDF" "--datadir=$MY_DATA"; }

my_admin() {  # run the mariadb client as the admin (root over our socket, unix_socket auth)
    mariadb --no-defaults --socket="$MY_SOCK" -u root "$@"
}

mariadb_start() {
    mkdir -p "$MY_DIR/run" "$MY_DIR/logs" "$MY_BINLOG_DIR"
    if [[ ! -d "$MY_DATA/mysql" ]]; then
        say "mariadb: creating datadir $MY_DATA"
        rm -rf "$MY_DATA"
        mkdir -p "$MY_DATA"
        if ! mariadb-install-db --no-defaults --datadir="$MY_DATA" --user="$(id -un)" \
            --auth-root-authentication-method=socket --auth-root-socket-user="$(id -un)" \
            --skip-test-db --skip-name-resolve >"$MY_DIR/logs/install-db.log" 2>&1; then
            log_tail "$MY_DIR/logs/install-db.log"
            die "mariadb-install-db failed"
        fi
    fi
    local args=(
        --no-defaults
        --datadir="$MY_DATA"
        --socket="$MY_SOCK"
        --pid-file="$MY_PIDF"
        --log-error="$MY_LOG"
        --port="$MY_PORT"
        --bind-address=127.0.0.1
        --skip-name-resolve
        --local-infile=1
        --character-set-server=utf8mb4
        --collation-server=utf8mb4_unicode_ci
        --default-time-zone=+00:00
        --max-connections=300
        --max-allowed-packet=256M
        --innodb-buffer-pool-size="$MY_BUFFER_POOL"
        # The binary log, as change capture reads it: row events with every column of both
        # row images, and the column names (without FULL metadata rows arrive unnamed).
        --server-id=1
        --log-bin="$MY_BINLOG_DIR/binlog"
        --binlog-format=ROW
        --binlog-row-image=FULL
        --binlog-row-metadata=FULL
        --binlog-expire-logs-seconds="$MY_BINLOG_EXPIRE"
    )
    ((EUID == 0)) && args+=(--user=root)
    say "mariadb: starting on 127.0.0.1:$MY_PORT"
    rm -f "$MY_PIDF"
    local log_start pid i
    log_start=$(($(stat -c %s "$MY_LOG" 2>/dev/null || echo 0) + 1))
    # (9>&-: the server must not inherit the lock of this script)
    setsid /usr/sbin/mariadbd "${args[@]}" </dev/null >>"$MY_DIR/logs/mariadbd.stdout" 2>&1 9>&- &
    pid=$!
    echo "$MY_PORT" >"$MY_DIR/run/port"
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -c +"$log_start" "$MY_LOG" >"$MY_DIR/logs/last-start.log" 2>/dev/null || true
            log_tail "$MY_DIR/logs/last-start.log"
            die "mariadb failed to start (port $MY_PORT)"
        fi
        my_admin -N -e 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    log_tail "$MY_LOG"
    die "mariadb did not accept connections on $MY_SOCK within 60s"
}

mariadb_bootstrap() {
    local u p h sql=""
    u="$(sql_str "$MY_USER")"
    p="$(sql_str "$MY_PASS")"
    [[ -n "$MY_PASS" ]] || die "CHARIOT_MYSQL__PASSWORD is empty"
    [[ "$MY_USER" != root ]] || die "CHARIOT_MYSQL__USER must not be root"
    sql+="DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES;"  # anonymous users
    for h in 127.0.0.1 localhost; do
        sql+="CREATE USER IF NOT EXISTS $u@'$h' IDENTIFIED VIA mysql_native_password USING PASSWORD($p);"
        sql+="ALTER USER $u@'$h' IDENTIFIED VIA mysql_native_password USING PASSWORD($p);"
        sql+="GRANT ALL PRIVILEGES ON *.* TO $u@'$h' WITH GRANT OPTION;"
        # (ALL covers them; named so the grants a change-capture reader needs are on record)
        sql+="GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO $u@'$h';"
    done
    sql+="CREATE DATABASE IF NOT EXISTS $(sql_ident "$MY_DB") CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    sql+="FLUSH PRIVILEGES;"
    my_admin -e "$sql" || die "mariadb: creating user $MY_USER / database $MY_DB failed"
}

mariadb_verify() {  # a real login over TCP with the configured user/password
    local rc=0
    if have_py_driver pymysql; then
        "$PY" "$WAIT_READY" mariadb --timeout 30 || rc=$?
    else
        MYSQL_PWD="$MY_PASS" mariadb --no-defaults -h 127.0.0.1 -P "$MY_PORT" -u "$MY_USER" \
            -D "$MY_DB" -N -e 'SELECT 1' >/dev/null || rc=$?
    fi
    ((rc == 0)) || { log_tail "$MY_LOG"; die "mariadb: login as $MY_USER on 127.0.0.1:$MY_PORT failed"; }
}

# ---------------------------------------------------------------- PostgreSQL

postgres_pid() { pid_if_ours "$PG_DATA/postmaster.pid" "$PG_DATA"; }

as_pg() {  # run a command as the OS user owning the cluster
    if ((EUID == 0)); then
        (cd "$PG_DIR" && runuser -u "$PG_OS_USER" -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

# The postgres user must be able to reach .services/postgres: add o+x where it is missing.
pg_make_traversable() {
    ((EUID == 0)) || return 0
    runuser -u "$PG_OS_USER" -- test -x "$PG_DIR" 2>/dev/null && return 0
    local d="$PG_DIR" chain=() i
    while [[ "$d" != / ]]; do
        d="$(dirname "$d")"
        chain=("$d" "${chain[@]}")
    done
    for i in "${chain[@]}"; do  # top down, so only the blocking directories change
        if ! runuser -u "$PG_OS_USER" -- test -x "$i" 2>/dev/null; then
            say "postgres: chmod o+x $i (the postgres user must traverse it)"
            chmod o+x "$i"
        fi
    done
}

pg_psql_admin() {  # psql as the cluster superuser over our socket; SQL on stdin
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -U "$PG_OS_USER" -d postgres "$@"
}

postgres_start() {
    mkdir -p "$PG_DIR/run" "$PG_DIR/logs"
    ((EUID == 0)) && chown "$PG_OS_USER": "$PG_DIR" "$PG_DIR/run" "$PG_DIR/logs"
    chmod 700 "$PG_DIR/run"
    pg_make_traversable
    if [[ ! -s "$PG_DATA/PG_VERSION" ]]; then
        say "postgres: initdb $PG_DATA ($("$PG_BIN/postgres" --version))"
        rm -rf "$PG_DATA"
        if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_OS_USER" -E UTF8 --locale=C.UTF-8 \
            --auth-local=peer --auth-host=scram-sha-256 >"$PG_DIR/logs/initdb.log" 2>&1; then
            log_tail "$PG_DIR/logs/initdb.log"
            die "initdb failed"
        fi
        echo "include_if_exists = 'chariot.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
    fi
    # Small containers often have a 64 MB /dev/shm: then use mmap for dynamic shared memory.
    local dsm=posix shm_kb
    shm_kb="$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $2}')"
    [[ -n "$shm_kb" && "$shm_kb" -ge 1048576 ]] || dsm=mmap
    as_pg tee "$PG_DATA/chariot.conf" >/dev/null <<EOF
# Written by scripts/services.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
max_connections = 200
shared_buffers = 256MB
password_encryption = scram-sha-256
dynamic_shared_memory_type = $dsm
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
EOF
    say "postgres: starting on 127.0.0.1:$PG_PORT"
    local log_start
    log_start=$(($(stat -c %s "$PG_LOG" 2>/dev/null || echo 0) + 1))
    if ! as_pg setsid "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 90 start >/dev/null 9>&-; then
        tail -c +"$log_start" "$PG_LOG" >"$PG_DIR/logs/last-start.log" 2>/dev/null || true
        log_tail "$PG_DIR/logs/last-start.log"
        die "postgres failed to start (port $PG_PORT)"
    fi
}

postgres_bootstrap() {
    [[ -n "$PG_PASS" ]] || die "CHARIOT_POSTGRES__PASSWORD is empty"
    pg_psql_admin -v u="$PG_USER" -v pw="$PG_PASS" -v db="$PG_DB" <<'SQL' || die "postgres: creating role/database failed"
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'u', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'u') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'u', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'db', :'u', 'UTF8')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
}

postgres_verify() {
    local rc=0
    if have_py_driver psycopg; then
        "$PY" "$WAIT_READY" postgres --timeout 30 || rc=$?
    else
        PGPASSWORD="$PG_PASS" "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" \
            -d "$PG_DB" -tAc 'SELECT 1' >/dev/null || rc=$?
    fi
    ((rc == 0)) || { log_tail "$PG_LOG"; die "postgres: login as $PG_USER on 127.0.0.1:$PG_PORT failed"; }
}

# ---------------------------------------------------------------- Neo4j

neo4j_pid() { pid_if_ours "$N4_PIDF" "--home-dir=$N4_HOME"; }

neo4j_jars_ok() {
    [[ -f "$N4_LIB/.neo4j-version" && "$(cat "$N4_LIB/.neo4j-version")" == "$NEO4J_VERSION" ]] &&
        compgen -G "$N4_LIB/neo4j-$NEO4J_VERSION.jar" >/dev/null
}

neo4j_fetch() {
    neo4j_jars_ok && return 0
    command -v mvn >/dev/null || apt_install maven
    say "neo4j: fetching Neo4j $NEO4J_VERSION jars from Maven Central (cached in ~/.m2)"
    rm -rf "$N4_LIB.tmp"
    mkdir -p "$N4_HOME"
    mkdir -p "$N4_HOME/logs"
    # (mvn 3.8 -q still prints colour codes: its output goes to a log, shown on failure)
    if ! JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$JAVA")")")" \
        mvn -q -B -f "$ROOT/scripts/neo4j/pom.xml" -Dneo4j.version="$NEO4J_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$N4_LIB.tmp" \
        >"$N4_HOME/logs/mvn.log" 2>&1; then
        sed -i 's/\x1b\[[0-9;]*m//g' "$N4_HOME/logs/mvn.log"
        log_tail "$N4_HOME/logs/mvn.log"
        die "mvn could not fetch org.neo4j:neo4j:$NEO4J_VERSION"
    fi
    echo "$NEO4J_VERSION" >"$N4_LIB.tmp/.neo4j-version"
    rm -rf "$N4_LIB"
    mv "$N4_LIB.tmp" "$N4_LIB"
}

neo4j_write_conf() {
    mkdir -p "$N4_CONF" "$N4_HOME"/{data,logs,run,import,plugins}
    cat >"$N4_CONF/neo4j.conf" <<EOF
# Written by scripts/services.sh on every start; edit the script, not this file.
# Strict validation is on: every key must be a valid Neo4j $NEO4J_VERSION setting.
server.directories.data=$N4_HOME/data
server.directories.logs=$N4_HOME/logs
server.directories.run=$N4_HOME/run
server.directories.import=$N4_HOME/import
server.directories.plugins=$N4_HOME/plugins
server.default_listen_address=127.0.0.1
server.default_advertised_address=127.0.0.1
server.bolt.enabled=true
server.bolt.listen_address=127.0.0.1:$N4_PORT
server.bolt.tls_level=DISABLED
server.http.enabled=false
server.https.enabled=false
dbms.security.auth_enabled=true
dbms.usage_report.enabled=false
server.memory.heap.initial_size=$NEO4J_HEAP
server.memory.heap.max_size=$NEO4J_HEAP
server.memory.pagecache.size=$NEO4J_PAGECACHE
db.tx_log.rotation.retention_policy=$NEO4J_TX_LOG_RETENTION
EOF
}

neo4j_launch() {  # starts the JVM in the background; sets N4_LAUNCH_PID
    [[ "$N4_USER" == neo4j ]] || die "CHARIOT_NEO4J__USER must be 'neo4j' for the Community server started here"
    ((${#N4_PASS} >= 8)) || die "CHARIOT_NEO4J__PASSWORD must have at least 8 characters (Neo4j rule)"
    neo4j_write_conf
    if [[ ! -d "$N4_HOME/data/databases/system" ]]; then
        say "neo4j: first start: setting the initial password"
        rm -f "$N4_HOME/data/dbms/auth.ini"
        NEO4J_HOME="$N4_HOME" NEO4J_CONF="$N4_CONF" "$JAVA" -cp "$N4_LIB/*" \
            org.neo4j.cli.AdminTool dbms set-initial-password "$N4_PASS" >"$N4_HOME/logs/admin.log" 2>&1 ||
            { log_tail "$N4_HOME/logs/admin.log"; die "neo4j: set-initial-password failed"; }
    fi
    # The JVM flags the packaged neo4j.conf template adds (server.jvm.additional).
    local jvm=(
        -Xms"$NEO4J_HEAP" -Xmx"$NEO4J_HEAP"
        -XX:+UseG1GC
        -XX:-OmitStackTraceInFastThrow
        -XX:+AlwaysPreTouch
        -XX:+UnlockExperimentalVMOptions
        -XX:+TrustFinalNonStaticFields
        -XX:+DisableExplicitGC
        -XX:+ExitOnOutOfMemoryError
        -Djdk.nio.maxCachedBufferSize=1024
        -Dio.netty.tryReflectionSetAccessible=true
        -Djdk.tls.ephemeralDHKeySize=2048
        -Djdk.tls.rejectClientInitiatedRenegotiation=true
        -XX:FlightRecorderOptions=stackdepth=256
        -XX:+UnlockDiagnosticVMOptions
        -XX:+DebugNonSafepoints
        --add-opens=java.base/java.nio=ALL-UNNAMED
        --add-opens=java.base/java.io=ALL-UNNAMED
        --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
        --enable-native-access=ALL-UNNAMED
        -Dlog4j2.disable.jmx=true
        -Dfile.encoding=UTF-8
    )
    say "neo4j: starting Neo4j $NEO4J_VERSION Community on 127.0.0.1:$N4_PORT ($JAVA)"
    N4_LOG_START=$(($(stat -c %s "$N4_LOG" 2>/dev/null || echo 0) + 1))
    (cd "$N4_HOME" && NEO4J_HOME="$N4_HOME" NEO4J_CONF="$N4_CONF" exec setsid "$JAVA" \
        -cp "$N4_CONF/*:$N4_LIB/*" "${jvm[@]}" org.neo4j.server.CommunityEntryPoint \
        --home-dir="$N4_HOME" --config-dir="$N4_CONF" --console-mode \
        </dev/null >>"$N4_LOG" 2>&1 9>&-) &
    N4_LAUNCH_PID=$!
    echo "$N4_LAUNCH_PID" >"$N4_PIDF"
    echo "$N4_PORT" >"$N4_HOME/run/port"
}

neo4j_fail() {
    tail -c +"${N4_LOG_START:-1}" "$N4_LOG" >"$N4_HOME/logs/last-start.log" 2>/dev/null || true
    log_tail "$N4_HOME/logs/last-start.log"
    die "$*"
}

neo4j_wait() {  # pid
    local pid="$1" rc=0 t0=$SECONDS
    if have_py_driver neo4j; then
        "$PY" "$WAIT_READY" neo4j --timeout "$NEO4J_START_TIMEOUT" --pid "$pid" || rc=$?
        case $rc in
            0) ;;
            2) die "neo4j refused the password from CHARIOT_NEO4J__PASSWORD. The password is fixed at the first start of a data dir; to reset: scripts/services.sh down && rm -rf $N4_HOME/data" ;;
            *) if ! kill -0 "$pid" 2>/dev/null; then
                   rm -f "$N4_PIDF"
                   neo4j_fail "neo4j exited during start-up (log: $N4_LOG)"
               fi
               neo4j_fail "neo4j did not answer RETURN 1 on $N4_URI within ${NEO4J_START_TIMEOUT}s (still starting? pid $pid; log: $N4_LOG)" ;;
        esac
    else
        say "neo4j: no neo4j driver in .venv (run 'make venv'): waiting for the log line and the port only"
        while ! { tail -c +"${N4_LOG_START:-1}" "$N4_LOG" 2>/dev/null | grep -q '^.* INFO  Started\.$' && port_in_use "$N4_PORT"; }; do
            kill -0 "$pid" 2>/dev/null || { rm -f "$N4_PIDF"; neo4j_fail "neo4j exited during start-up"; }
            ((SECONDS - t0 < NEO4J_START_TIMEOUT)) || neo4j_fail "neo4j did not start within ${NEO4J_START_TIMEOUT}s"
            sleep 1
        done
    fi
}

# ---------------------------------------------------------------- commands

running_port() {  # state-file -> port recorded at start (postmaster.pid: line 4)
    local p=""
    if [[ "$1" == */postmaster.pid ]]; then p="$(sed -n 4p "$1" 2>/dev/null)"; else p="$(cat "$1" 2>/dev/null)"; fi
    echo "${p:-?}"
}

WANTED=(mariadb postgres neo4j)  # the servers `up`/`down` act on (all unless named)
wants() { [[ " ${WANTED[*]} " == *" $1 "* ]]; }

select_servers() {  # names... -> WANTED (no names: all three)
    (($#)) || return 0
    local s
    for s in "$@"; do
        case $s in
            mariadb | postgres | neo4j) ;;
            *) die "unknown server '$s' (expected mariadb, postgres or neo4j)" ;;
        esac
    done
    WANTED=("$@")
}

cmd_up() {
    local t0=$SECONDS my_pid="" pg_pid="" n4_pid="" started=()
    mkdir -p "$SVC"
    # 1. Our servers already running? Otherwise their ports must be free.
    my_pid="$(mariadb_pid || true)"
    pg_pid="$(postgres_pid || true)"
    n4_pid="$(neo4j_pid || true)"
    check_port() {  # name pid state-file port
        wants "$1" || return 0
        if [[ -n "$2" ]]; then
            local p
            p="$(running_port "$3")"
            [[ "$p" == "$4" ]] || die "$1 is already running (pid $2) on port $p but the settings say $4: run 'scripts/services.sh down' first"
        elif port_in_use "$4"; then
            die "port $4 (127.0.0.1) needed by $1 is already in use by another process; stop it or change the port in .env"
        fi
    }
    check_port mariadb "$my_pid" "$MY_DIR/run/port" "$MY_PORT"
    check_port postgres "$pg_pid" "$PG_DATA/postmaster.pid" "$PG_PORT"
    check_port neo4j "$n4_pid" "$N4_HOME/run/port" "$N4_PORT"
    local -A seen=()
    for p in "$MY_PORT" "$PG_PORT" "$N4_PORT"; do
        [[ -z "${seen[$p]:-}" ]] || die "port $p is configured for two servers"
        seen[$p]=1
    done

    # 2. Packages, Java, Neo4j jars.
    install_packages
    if wants postgres; then
        PG_BIN="$(pg_bindir)" || die "no PostgreSQL server found under /usr/lib/postgresql"
    fi
    if wants neo4j && [[ -z "$n4_pid" ]]; then neo4j_fetch; fi

    # 3. Neo4j boots slowest: launch it first, then MariaDB and PostgreSQL meanwhile.
    if wants neo4j && [[ -z "$n4_pid" ]]; then
        neo4j_launch
        n4_pid="$N4_LAUNCH_PID"
        started+=(neo4j)
    fi
    if wants mariadb; then
        if [[ -z "$my_pid" ]]; then
            mariadb_start
            started+=(mariadb)
        fi
        mariadb_bootstrap
        mariadb_verify
        my_pid="$(mariadb_pid)" || die "mariadb: pid file $MY_PIDF missing"
    fi
    if wants postgres; then
        if [[ -z "$pg_pid" ]]; then
            postgres_start
            started+=(postgres)
        fi
        postgres_bootstrap
        postgres_verify
        pg_pid="$(postgres_pid)" || die "postgres: postmaster.pid missing"
    fi
    if wants neo4j; then neo4j_wait "$n4_pid"; fi

    local what
    for s in "${WANTED[@]}"; do
        if [[ " ${started[*]} " == *" $s "* ]]; then what="started"; else what="already running"; fi
        case $s in
            mariadb)  printf 'mariadb   %-15s pid %-7s 127.0.0.1:%-5s user %s, database %s (%s)\n' "$what" "$my_pid" "$MY_PORT" "$MY_USER" "$MY_DB" "$(/usr/sbin/mariadbd --version | grep -o 'Ver [^ ]*' | cut -d' ' -f2)" ;;
            postgres) printf 'postgres  %-15s pid %-7s 127.0.0.1:%-5s user %s, database %s (PostgreSQL %s)\n' "$what" "$pg_pid" "$PG_PORT" "$PG_USER" "$PG_DB" "$(cat "$PG_DATA/PG_VERSION")" ;;
            neo4j)    printf 'neo4j     %-15s pid %-7s 127.0.0.1:%-5s user %s, %s (Neo4j %s Community)\n' "$what" "$n4_pid" "$N4_PORT" "$N4_USER" "$N4_URI" "$(cat "$N4_LIB/.neo4j-version")" ;;
        esac
    done
    say "ready in $((SECONDS - t0))s"
}

stop_pid() {  # name pid seconds
    local name="$1" pid="$2" secs="$3"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_pid_exit "$pid" "$secs"; then
        say "$name (pid $pid) still running after ${secs}s: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_pid_exit "$pid" 10 || die "$name (pid $pid) does not exit"
    fi
}

cmd_down() {
    local pid n4=""
    # Neo4j takes a few seconds to shut down: signal it first, wait for it last.
    if wants neo4j && n4="$(neo4j_pid)"; then kill -TERM "$n4" 2>/dev/null || true; fi
    if ! wants postgres; then
        :
    elif pid="$(postgres_pid)"; then
        PG_BIN="$(pg_bindir)"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null ||
            stop_pid postgres "$pid" 60
        echo "postgres  stopped (was pid $pid)"
    else
        echo "postgres  not running"
    fi
    if ! wants mariadb; then
        :
    elif pid="$(mariadb_pid)"; then
        stop_pid mariadb "$pid" 60
        echo "mariadb   stopped (was pid $pid)"
    else
        echo "mariadb   not running"
    fi
    if ! wants neo4j; then
        :
    elif [[ -n "$n4" ]]; then
        stop_pid neo4j "$n4" 120
        rm -f "$N4_PIDF"
        echo "neo4j     stopped (was pid $n4)"
    else
        echo "neo4j     not running"
    fi
}

cmd_status() {
    local pid
    if pid="$(mariadb_pid)"; then
        echo "mariadb   running (pid $pid, port $(running_port "$MY_DIR/run/port"))"
    else
        echo "mariadb   stopped"
    fi
    if pid="$(postgres_pid)"; then
        echo "postgres  running (pid $pid, port $(running_port "$PG_DATA/postmaster.pid"))"
    else
        echo "postgres  stopped"
    fi
    if pid="$(neo4j_pid)"; then
        echo "neo4j     running (pid $pid, port $(running_port "$N4_HOME/run/port"))"
    else
        echo "neo4j     stopped"
    fi
}

cmd_build_deps() {  # what pip needs to build chariot[fast] (mysqlclient) from source
    local pkgs=(gcc pkg-config libmariadb-dev)
    local python="${1:-python3}"
    "$python" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null \
        || pkgs+=(python3-dev)
    apt_install "${pkgs[@]}"
}

cmd_install() {
    install_packages
    neo4j_fetch
    say "packages present; java: $JAVA; Neo4j $NEO4J_VERSION jars in $N4_LIB"
}

lock() {  # one up/down at a time (e.g. `make -j`, two terminals)
    mkdir -p "$SVC"
    exec 9>"$SVC/.lock"
    if ! flock -w 600 9; then die "another scripts/services.sh holds $SVC/.lock"; fi
}

case "${1:-}" in
    up) shift; select_servers "$@"; lock; cmd_up ;;
    down) shift; select_servers "$@"; lock; cmd_down ;;
    status) cmd_status ;;
    install) cmd_install ;;
    build-deps) shift; cmd_build_deps "$@" ;;
    *)
        echo "usage: $0 up|down [mariadb|postgres|neo4j ...] | status | install | build-deps [PYTHON]" >&2
        exit 2
        ;;
esac
