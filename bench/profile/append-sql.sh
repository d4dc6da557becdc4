#!/usr/bin/env bash
# The append function's server side alone, variant against variant: pgbench
# calls each variant of `eventcore.append` on a scratch database (no Node, no
# driver), interleaved, and reports transactions per second at concurrency 1
# and 8 for W1 (one event to a new stream) and W3 (ten events to a new stream).
# A variant is `current` (the migrated function itself), `same` or `nopath`
# (made from its text, below), or a file of SQL that creates
# `eventcore.append_<the file's name>(jsonb)` (a prototype).
#
#   bash bench/profile/append-sql.sh [seconds per run, default 5] [repetitions, default 3] [variant...]
#
# Run with PGOPTIONS="-c synchronous_commit=off" to see the CPU: with it on, the
# wait for the WAL's flush hides most of the difference.
#
# Needs DATABASE_URL's server on this machine (pgbench and psql on the PATH).
set -euo pipefail
seconds=${1:-5}
reps=${2:-3}
shift $(( $# > 2 ? 2 : $# ))
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
db=eventcore_append_sql_$$
admin() { psql "$url" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }
dburl="${url%/*}/$db"
work=$(mktemp -d)
trap 'admin "drop database if exists $db with (force)" >/dev/null; rm -rf "$work"' EXIT

admin "create database $db" >/dev/null
(cd "$root" && npx tsx src/cli/main.ts migrate --url "$dburl" >/dev/null)

# NO_FK=1: without the foreign key that keeps streams gap-free (previous_version), to price it.
if [ "${NO_FK:-}" = 1 ]; then
  psql "$dburl" -qAtX -v ON_ERROR_STOP=1 -c 'alter table eventcore.events drop constraint eventcore_events_previous_version' >/dev/null
fi

# Variants made from the migrated function's own text: `same` (a control under another name, which
# should run as `current` does) and `nopath` (without its SET search_path clause, the events table
# qualified: what the clause costs per call; not safe as it stands, as operators and functions then
# resolve through the caller's search path).
derive() {
  local name=$1 edit=$2
  psql "$dburl" -qAtX -v ON_ERROR_STOP=1 >/dev/null <<SQL
select $edit
from (select replace(pg_get_functiondef('eventcore.append(jsonb)'::regprocedure),
                     'FUNCTION eventcore.append(', 'FUNCTION eventcore.append_$name(') as def) f
\gexec
SQL
}

variants=()
for variant in "${@:-current same nopath}"; do
  for name in $variant; do
    case $name in
      current) ;;
      same) derive same "def" ;;
      nopath) derive nopath "replace(replace(replace(replace(regexp_replace(def, '\\n SET search_path TO [^\\n]*', ''),
        'FROM events e', 'FROM eventcore.events e'), 'INSERT INTO events', 'INSERT INTO eventcore.events'),
        'expected_version_holds(', 'eventcore.expected_version_holds('), ' version_conflict(', ' eventcore.version_conflict(')" ;;
      *) psql "$dburl" -qAtX -v ON_ERROR_STOP=1 -f "$name" >/dev/null; name=$(basename "$name" .sql) ;;
    esac
    variants+=("$name")
  done
done

# One new stream per call, its id and its events' ids random: as W1 and W3 append.
script() {
  local fn=$1 events=$2
  cat <<SQL
select eventcore.$fn(jsonb_build_object('conflict', 'reply',
  'streams', jsonb_build_array(jsonb_build_object('id', s, 'expected', 'no_stream')),
  'events', (select jsonb_agg(jsonb_build_object('stream', s, 'id', gen_random_uuid(), 'type', 'OrderPlaced',
             'data', jsonb_build_object('orderId', 'o-' || i, 'amount', i))) from generate_series(1, $events) i)))
from (select 'b-' || gen_random_uuid() as s) x;
SQL
}

printf '%-22s %-3s %-3s %s\n' variant wl c "tps by repetition"
declare -A results
for rep in $(seq 1 "$reps"); do
  for workload in W1 W3; do
    events=$([ $workload = W1 ] && echo 1 || echo 10)
    for clients in 1 8; do
      for variant in "${variants[@]}"; do
        fn=$([ "$variant" = current ] && echo append || echo "append_$variant")
        script "$fn" "$events" > "$work/script.sql"
        tps=$(PGOPTIONS="${PGOPTIONS:-}" pgbench -n -f "$work/script.sql" -c "$clients" -j "$clients" -T "$seconds" "$dburl" 2>"$work/errors" |
          sed -n 's/^tps = \([0-9.]*\).*/\1/p') || true
        if [ -z "$tps" ]; then
          echo "$variant failed:" >&2
          tail -3 "$work/errors" >&2
          exit 1
        fi
        key="$variant $workload $clients"
        results[$key]="${results[$key]:-} ${tps%.*}"
      done
    done
  done
done
for workload in W1 W3; do
  for clients in 1 8; do
    for variant in "${variants[@]}"; do
      key="$variant $workload $clients"
      printf '%-22s %-3s %-3s %s\n' "$variant" "$workload" "$clients" "${results[$key]}"
    done
  done
done
