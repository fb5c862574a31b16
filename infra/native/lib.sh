# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared helpers for infra/native/{install,up,down,status,register-connector}.
# Sourced, not executed. Everything resolves relative to the repo root found from this file,
# so the scripts work from any clone path and any working directory.

set -euo pipefail

NATIVE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$NATIVE_DIR/../.." && pwd)"
INFRA_DIR="$REPO_ROOT/infra"
STATE_DIR="$REPO_ROOT/.state"
LOG_DIR="$STATE_DIR/logs"
PID_DIR="$STATE_DIR/pids"
JAR_DIR="$STATE_DIR/jars"

ALL_COMPONENTS=(postgres redis kafka connect)

# Fixed by the project contract (see infra/README-style comments in each config file).
PG_PORT=5432
REDIS_PORT=6379
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
CONNECT_PORT=8083
HOST=127.0.0.1

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_DATA="$STATE_DIR/postgres/data"

# Modest heaps: plenty for a single-node dev/CI stack.
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
CONNECT_HEAP_OPTS="${CONNECT_HEAP_OPTS:--Xms256m -Xmx512m}"

# Seconds to wait for a component to become ready / to exit.
UP_TIMEOUT="${FLASHSALE_UP_TIMEOUT:-120}"
DOWN_TIMEOUT="${FLASHSALE_DOWN_TIMEOUT:-30}"

log()  { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

now_ms() { date +%s%3N; }
elapsed() { # elapsed <start_ms> -> "12.3s"
  local d=$(( $(now_ms) - $1 ))
  printf '%d.%ds' $((d / 1000)) $(((d % 1000) / 100))
}

is_root() { [ "$(id -u)" -eq 0 ]; }

ensure_dirs() { mkdir -p "$LOG_DIR" "$PID_DIR" "$JAR_DIR"; }

valid_component() {
  local c
  for c in "${ALL_COMPONENTS[@]}"; do [ "$c" = "$1" ] && return 0; done
  return 1
}

# components_from_args [names...] -> prints validated component list (default: all, in up order)
components_from_args() {
  if [ $# -eq 0 ]; then printf '%s\n' "${ALL_COMPONENTS[@]}"; return; fi
  local c
  for c in "$@"; do
    valid_component "$c" || die "unknown component '$c' (known: ${ALL_COMPONENTS[*]})"
  done
  # keep canonical order (postgres redis kafka connect) whatever the argument order
  for c in "${ALL_COMPONENTS[@]}"; do
    local a; for a in "$@"; do [ "$a" = "$c" ] && { echo "$c"; break; }; done
  done
}

component_port() {
  case "$1" in
    postgres) echo "$PG_PORT" ;; redis) echo "$REDIS_PORT" ;;
    kafka) echo "$KAFKA_PORT" ;; connect) echo "$CONNECT_PORT" ;;
  esac
}

# A pattern that the process' command line must contain, so a recycled pid is not mistaken for ours.
component_cmd_pattern() {
  case "$1" in
    postgres) echo "postgres" ;; redis) echo "redis-server" ;;
    kafka) echo "kafka.Kafka" ;; connect) echo "ConnectDistributed" ;;
  esac
}

# A live process (a zombie -- exited, not yet reaped by its parent/init -- counts as gone).
pid_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st; st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
  [ "$st" != Z ]
}

pid_file() { echo "$PID_DIR/$1.pid"; }
log_file() { echo "$LOG_DIR/$1.log"; }

# Prints the pid of our running instance of the component, or nothing (and returns 1).
component_pid() {
  local c=$1 f pid cmd
  f=$(pid_file "$c")
  [ -s "$f" ] || return 1
  pid=$(head -n1 "$f" | tr -dc '0-9')
  [ -n "$pid" ] || return 1
  pid_alive "$pid" || return 1
  cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)
  case "$cmd" in *"$(component_cmd_pattern "$c")"*) echo "$pid"; return 0 ;; esac
  return 1
}

port_open() { # port_open <port>: something accepts TCP connections on 127.0.0.1:<port>
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Who listens on a port (best effort, for error messages).
port_owner() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n1
  fi
}

# Is the listener on <port> one of <pid>'s processes (pid or its children)? best effort via ss.
port_is_ours() {
  local port=$1 pid=$2 owners p
  command -v ss >/dev/null 2>&1 || return 0   # cannot tell: assume yes
  owners=$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)
  [ -n "$owners" ] || return 0                 # no owner info (e.g. not root): assume yes
  for p in $owners; do
    [ "$p" = "$pid" ] && return 0
    [ "$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null)" = "$pid" ] && return 0
  done
  return 1
}

tail_log() { # tail_log <component> [lines]
  local f; f=$(log_file "$1")
  if [ -f "$f" ]; then
    echo "----- last ${2:-40} lines of $f -----" >&2
    tail -n "${2:-40}" "$f" >&2
    echo "-----" >&2
  else
    echo "(no log file $f)" >&2
  fi
}

find_java() {
  local j=""
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then j="$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then j=$(command -v java)
  else die "java not found (need Java 17+; set JAVA_HOME or put java on PATH)"; fi
  local v
  v=$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' | head -n1)
  [ -n "$v" ] || die "cannot determine the version of $j"
  [ "${v%%.*}" -ge 17 ] 2>/dev/null || die "java at $j is version $v; Kafka 4.x needs Java 17+ (set JAVA_HOME)"
  echo "$j"
}

# Classpath for a component's resolved jars.
jars_cp() {
  local d="$JAR_DIR/$1"
  compgen -G "$d/*.jar" >/dev/null || die "no jars in $d (run infra/native/install)"
  echo "$d/*"
}

# Run a command as the postgres OS user when we are root (Postgres refuses to run as root).
as_pg() {
  if is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Writes <dst> = <src> followed by "key=value" overrides (later keys win in java.util.Properties).
render_properties() {
  local src=$1 dst=$2; shift 2
  {
    echo "# GENERATED by infra/native from $src -- edit the source, not this file"
    cat "$src"
    echo
    echo "# --- native overrides (paths under .state) ---"
    local kv; for kv in "$@"; do echo "$kv"; done
  } > "$dst.tmp"
  mv "$dst.tmp" "$dst"
}

# Start a long-running process detached (own session), stdout/err appended to its log, pid recorded.
spawn() { # spawn <component> <command...>
  local c=$1; shift
  local lf; lf=$(log_file "$c")
  echo "===== $(date -Is) starting: $* =====" >> "$lf"
  setsid nohup "$@" >> "$lf" 2>&1 < /dev/null &
  echo $! > "$(pid_file "$c")"
}
