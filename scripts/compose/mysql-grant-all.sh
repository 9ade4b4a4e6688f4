# Sourced (not executed: keep this file non-executable) by the mysql image's entrypoint from
# /docker-entrypoint-initdb.d on the first start, after it created MYSQL_USER@'%'.
# Chariot's tests create and drop their own databases, so the user gets ALL on *.*. ALL
# covers what change capture needs; those grants are named too, so they stay on record.
docker_process_sql --database=mysql <<<"GRANT ALL PRIVILEGES ON *.* TO '${MYSQL_USER}'@'%' WITH GRANT OPTION; GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${MYSQL_USER}'@'%'; FLUSH PRIVILEGES;"
