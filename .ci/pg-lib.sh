# shellcheck shell=bash disable=SC2154 # pg_lib_name, user, dir: set by the sourcing script
# What .ci/pg-versions.sh and .ci/replication.sh share: throwaway PostgreSQL
# servers run as an unprivileged user, on free ports. Sourced; the script sets
# `pg_lib_name` (its name in messages), `user` (the server user), `dir` (its
# working directory) and `next_port` (where the search for a free port starts).

die() {
  echo "$pg_lib_name: $1" >&2
  shift
  local f
  for f in "$@"; do
    [[ -s $f ]] && { echo "--- last lines of $f:" >&2; tail -n 30 "$f" >&2; }
  done
  exit 1
}

# Runs a command as the server user, from <dir>: initdb and pg_ctl fail when the
# current directory is not readable to them.
as_user() {
  if ((EUID == 0)); then
    (cd "$dir" && runuser -u "$user" -- "$@")
  else
    (cd "$dir" && "$@")
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts the server of a data directory on a free port (the next one if another
# process takes it between the check and the bind) and prints the port.
start_server() { # label bin data-dir server-log pg_ctl-log wait-seconds
  local label=$1 bin=$2 data=$3 log=$4 ctl_log=$5 wait=$6 port attempt
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=$next_port
    while port_in_use "$port"; do port=$((port + 1)); done
    next_port=$((port + 1))
    rm -f "$log"
    if as_user "$bin/pg_ctl" start -D "$data" -l "$log" -w -t "$wait" -o "-p $port" >"$ctl_log" 2>&1; then
      port_in_use "$port" || die "$label is up but not on port $port" "$log"
      echo "$port"
      return
    fi
    if [[ ! -f $data/postmaster.pid ]] && grep -q 'could not create any TCP/IP sockets' "$log"; then
      echo "$pg_lib_name: port $port was taken while $label started (attempt $attempt)" >&2
      continue
    fi
    break
  done
  die "$label did not start" "$ctl_log" "$log"
}

alive() { # pid; a zombie is not alive (nothing may be reaping exited daemons)
  local stat
  stat=$(ps -o stat= -p "$1") && [[ $stat != Z* ]]
}

# Stops the server of a data directory at once (SIGQUIT: immediate shutdown, the
# data is thrown away or recovered as after a crash).
stop_server() { # data-dir
  local data=$1 pid kids
  [[ -f $data/postmaster.pid ]] || return 0
  pid=$(head -n 1 "$data/postmaster.pid")
  # postmaster.pid outlives a crashed server: signal only the process that is this server.
  [[ $pid =~ ^[0-9]+$ ]] && ps -o args= -p "$pid" | grep -qF -- "$data" || return 0
  kids=$(ps -o pid= --ppid "$pid" || true)
  kill -QUIT "$pid" 2>/dev/null || true
  for _ in {1..100}; do
    alive "$pid" || return 0
    sleep 0.1
  done
  echo "$pg_lib_name: PostgreSQL in $data ignored SIGQUIT for 10s, killing it" >&2
  # shellcheck disable=SC2086 # a list of pids
  kill -KILL "$pid" $kids 2>/dev/null || true
}
