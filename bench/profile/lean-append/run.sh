#!/usr/bin/env bash
# The server side alone of an events-only append (issue #15), against the
# checkout's append function and a bare INSERT, with pgbench (a C client, so no
# Node cost); see README.md.
#   bench/profile/lean-append/run.sh [database-url-of-a-server]   (creates and drops database lean_append)
set -euo pipefail
cd "$(dirname "$0")"
server=${1:-postgres://postgres@127.0.0.1:5432/postgres}
db=${server%/*}/lean_append
pgbench=${PGBENCH:-$(ls /usr/lib/postgresql/*/bin/pgbench | tail -n 1)}
psql -q "$server" -c 'drop database if exists lean_append' -c 'create database lean_append'
(cd ../../.. && npx tsx src/cli/main.ts migrate --url "$db" >/dev/null)
psql -q "$db" -f setup.sql
for rep in 1 2; do
  for shape in w1:"raw ec lean leannofk leansql" w2:"raw ec lean" w3:"raw ec lean"; do
    w=${shape%%:*}
    for c in 1 8; do
      for s in ${shape#*:}; do
        tps=$("$pgbench" -n -M prepared -c "$c" -j 2 -T 5 -f "${s}_$w.sql" "$db" 2>&1 | grep -oP 'tps = \K[0-9.]+' | head -n 1)
        echo "rep$rep $w c$c $s $tps"
      done
    done
  done
done
psql -q "$server" -c 'drop database lean_append'
