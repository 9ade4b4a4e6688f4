# Sourced (not executed: keep this file non-executable) by the mysql image's entrypoint from
# /docker-entrypoint-initdb.d on the first start, after it created MYSQL_USER@'%'.
# Chariot's tests create and drop their own databases, so the user gets ALL on *.*.
docker_process_sql --database=mysql <<<"GRANT ALL PRIVILEGES ON *.* TO '${MYSQL_USER}'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;"
