#!/bin/sh
# `mariadbd ARGS…`: on an empty data folder, create the system tables, the database and the app
# user (password from MARIADB_PASSWORD_FILE, allowed from any address of the stack's network), then
# run the server as mysql with ARGS. Anything else is run as given.
set -eu
if [ "${1:-}" != "mariadbd" ]; then
  exec "$@"
fi
shift
datadir=/var/lib/mysql
marker="$datadir/.payctl-initialized"
if [ ! -f "$marker" ]; then
  : "${MARIADB_DATABASE:?}" "${MARIADB_USER:?}" "${MARIADB_PASSWORD_FILE:?}"
  find "$datadir" -mindepth 1 -delete  # what a failed first start left
  mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=socket \
    --skip-test-db >/dev/null
  password="$(tr -d '\n' < "$MARIADB_PASSWORD_FILE")"
  socket=/run/mysqld/init.sock
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket="$socket" --skip-log-bin &
  pid=$!
  tries=0
  until mariadb-admin --socket="$socket" ping >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then echo "mariadbd did not start for initialisation" >&2; exit 1; fi
    sleep 0.1
  done
  mariadb --socket="$socket" <<SQL
CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\` CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$MARIADB_USER'@'%' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';
SQL
  mariadb-admin --socket="$socket" shutdown
  wait "$pid" || true
  touch "$marker"
fi
exec mariadbd --user=mysql --datadir="$datadir" "$@"
