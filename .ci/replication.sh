#!/usr/bin/env bash
# A throwaway PostgreSQL 15 primary and a hot standby streaming from it, run
# from the machine's binaries (PGR_BIN, default /usr/lib/postgresql/15/bin), for
# the tests of followers on hot standbys.
#
#   replication.sh start <dir>          start both, print "primary URL" and "standby URL" lines
#   replication.sh stop <dir>           stop both and delete <dir>
#   replication.sh crash-primary <dir>  stop the primary at once, as a crash would
#   replication.sh promote <dir>        promote the standby, wait until it is out of recovery
#   replication.sh wait-replay <dir>    wait until the standby has replayed all the primary wrote
#
# <dir> must be new or empty, and its parent directories searchable by the
# server user: PGR_USER (default eventcore-ci, created when run as root, since
# initdb and postgres refuse to run as root). Ports are the free ones from
# PGR_PORT (default 54336) upwards. The servers trust every local connection,
# replication included. PGR_COLD_COPY=1 makes the standby from a copy of the
# stopped primary instead of pg_basebackup (the fallback when that fails).
set -euo pipefail
shopt -s inherit_errexit
trap 'exit 1' INT TERM # so that the EXIT traps run

bin=${PGR_BIN:-/usr/lib/postgresql/15/bin}
user=${PGR_USER:-eventcore-ci}
next_port=${PGR_PORT:-54336}
timeout=${PGR_TIMEOUT:-30} # seconds, for each wait
dir=

pg_lib_name=replication
# shellcheck source=.ci/pg-lib.sh
source "$(dirname "$0")/pg-lib.sh"

# One value from a query on a server of <dir> (primary or standby), over TCP.
query() { # node sql
  PGCONNECT_TIMEOUT=5 "$bin/psql" -X -A -t -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$(<"$dir/$1.port")" -U postgres -d postgres -c "$2"
}

# Waits until a query on a node prints "t"; dies after $timeout seconds.
wait_until() { # what node sql log...
  local what=$1 node=$2 sql=$3 deadline=$((SECONDS + timeout)) out
  shift 3
  while true; do
    out=$(query "$node" "$sql" 2>&1) && [[ $out == t ]] && return 0
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting until $what (last answer: $out)" "$@"
    sleep 0.05
  done
}

# Starts the server of <dir>/<node> on a free port and remembers it in <dir>/<node>.port.
start_node() { # node
  local port
  port=$(start_server "the $1" "$bin" "$dir/$1" "$dir/$1.log" "$dir/$1.pg_ctl.log" "$timeout")
  echo "$port" >"$dir/$1.port"
}

stop_servers() {
  local node
  for node in standby primary; do
    [[ -d $dir/$node ]] && stop_server "$dir/$node"
  done
  return 0
}

init_primary() {
  as_user "$bin/initdb" -D "$dir/primary" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
    >"$dir/initdb.log" 2>&1 || die "initdb failed" "$dir/initdb.log"
  # Durability against power loss is pointless for a throwaway (fsync off), but
  # synchronous_commit stays on: a commit acknowledged has its WAL flushed, which
  # is what the primary streams, so the standby gets it even if the primary
  # crashes next. Recovery conflicts cancel the standby's reads after 1s.
  cat >>"$dir/primary/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 5
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = off
max_standby_streaming_delay = 1s
shared_buffers = 32MB
max_connections = 50
EOF
  # initdb --auth=trust trusts local and 127.0.0.1 connections, replication included.
  grep -Eq '^host +replication +all +127\.0\.0\.1/32 +trust' "$dir/primary/pg_hba.conf" ||
    die "initdb's pg_hba.conf does not trust replication from 127.0.0.1" "$dir/primary/pg_hba.conf"
}

# The standby from pg_basebackup: -R writes standby.signal and primary_conninfo.
base_backup() {
  as_user "$bin/pg_basebackup" -h 127.0.0.1 -p "$(<"$dir/primary.port")" -U postgres \
    -D "$dir/standby" -R -X stream --checkpoint=fast --no-sync >"$dir/pg_basebackup.log" 2>&1
}

# The standby from a copy of the stopped primary, the fallback.
cold_copy() {
  local port
  port=$(<"$dir/primary.port")
  as_user "$bin/pg_ctl" stop -D "$dir/primary" -m fast -w -t "$timeout" >"$dir/primary.pg_ctl.log" 2>&1 ||
    die "the primary did not stop for the cold copy" "$dir/primary.pg_ctl.log" "$dir/primary.log"
  rm -rf "$dir/standby"
  as_user cp -a "$dir/primary" "$dir/standby"
  rm -f "$dir/standby/postmaster.pid" "$dir/standby/postmaster.opts"
  as_user touch "$dir/standby/standby.signal"
  echo "primary_conninfo = 'host=127.0.0.1 port=$port user=postgres application_name=standby'" |
    as_user tee -a "$dir/standby/postgresql.auto.conf" >/dev/null
  # The primary again, on its port.
  as_user "$bin/pg_ctl" start -D "$dir/primary" -l "$dir/primary.log" -w -t "$timeout" -o "-p $port" \
    >"$dir/primary.pg_ctl.log" 2>&1 || die "the primary did not start again" "$dir/primary.pg_ctl.log" "$dir/primary.log"
}

# Creates the server user when run as root. Test files run at once may race to
# create it: useradd then fails (user exists, /etc/passwd locked) for all but one.
ensure_user() {
  local attempt
  ((EUID == 0)) || return 0
  for attempt in {1..50}; do
    id -u "$user" >/dev/null 2>&1 && return 0
    useradd --system --no-create-home --shell /usr/sbin/nologin "$user" 2>/dev/null && return 0
    sleep 0.1
  done
  useradd --system --no-create-home --shell /usr/sbin/nologin "$user" || die "could not create user $user"
}

cmd_start() {
  ensure_user
  [[ -x $bin/initdb && -x $bin/pg_ctl && -x $bin/postgres && -x $bin/pg_basebackup ]] ||
    die "no PostgreSQL binaries in $bin (PGR_BIN)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ -z $(ls -A "$dir") ]] || die "$dir is not empty"
  # The Unix sockets live in <dir>: their paths must stay under 108 bytes.
  ((${#dir} <= 80)) || die "$dir is too long a path for the servers' Unix sockets"
  touch "$dir/.replication" # tells "stop" that the directory is ours to delete
  ((EUID != 0)) || chown "$user:" "$dir"
  as_user test -w "$dir" 2>/dev/null ||
    die "$dir is unreachable to user $user (are its parent directories searchable by others?)"
  # On failure, stop what was started but keep the logs; "stop" deletes them.
  trap stop_servers EXIT

  init_primary
  start_node primary
  if [[ ${PGR_COLD_COPY:-} == 1 ]]; then
    cold_copy
  elif ! base_backup; then
    echo "replication: pg_basebackup failed, copying the stopped primary instead:" >&2
    tail -n 10 "$dir/pg_basebackup.log" >&2
    cold_copy
  fi
  start_node standby
  wait_until "the standby is in recovery" standby "select pg_is_in_recovery()" "$dir/standby.log"
  wait_until "the primary streams to the standby" primary \
    "select exists (select from pg_stat_replication where state = 'streaming')" "$dir/primary.log" "$dir/standby.log"
  trap - EXIT
  echo "primary postgres://postgres@127.0.0.1:$(<"$dir/primary.port")/postgres"
  echo "standby postgres://postgres@127.0.0.1:$(<"$dir/standby.port")/postgres"
}

cmd_stop() {
  [[ -f $dir/.replication ]] || return 0
  dir=$(cd "$dir" && pwd)
  stop_servers
  rm -rf "$dir"
}

# Fault injection for tests: the primary stops at once, as in a crash (no
# checkpoint, clients cut off); the standby keeps trying to reconnect.
cmd_crash_primary() {
  as_user "$bin/pg_ctl" stop -D "$dir/primary" -m immediate -w -t "$timeout" >"$dir/primary.pg_ctl.log" 2>&1 ||
    die "the primary did not stop" "$dir/primary.pg_ctl.log" "$dir/primary.log"
}

cmd_promote() {
  as_user "$bin/pg_ctl" promote -D "$dir/standby" -w -t "$timeout" >"$dir/standby.pg_ctl.log" 2>&1 ||
    die "the standby was not promoted" "$dir/standby.pg_ctl.log" "$dir/standby.log"
  wait_until "the promoted standby is out of recovery" standby "select not pg_is_in_recovery()" "$dir/standby.log"
}

cmd_wait_replay() {
  local lsn
  lsn=$(query primary "select pg_current_wal_lsn()" 2>&1) ||
    die "no WAL position from the primary (is it running?): $lsn" "$dir/primary.log"
  wait_until "the standby has replayed the primary's WAL up to $lsn" standby \
    "select coalesce(pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn, false)" "$dir/standby.log"
}

usage() {
  sed -n '6,10s/^# *//p' "$0" >&2
  exit 2
}

(($# == 2)) || usage
dir=$2
case $1 in
start) cmd_start ;;
stop) cmd_stop ;;
crash-primary | promote | wait-replay)
  [[ -f $dir/.replication && -f $dir/standby.port ]] || die "no primary and standby started in $dir"
  dir=$(cd "$dir" && pwd)
  "cmd_${1//-/_}"
  ;;
*) usage ;;
esac
