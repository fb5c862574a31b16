# shellcheck shell=bash
# Start/stop the three flashsale services as background processes (pid files and
# logs under .state/, like infra/native). Sourced by scripts/up, scripts/down and scripts/fuzz.
# SVC_INSTANCE=test selects the test stack's instances (test/stack.env: own ports, pid and log
# files; the caller exports the test stack's DATABASE_URL etc.), which never collide with the
# services scripts/up serves.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES=(invalidator catalog checkout)
SVC_PID_DIR="$ROOT/.state/pids"
SVC_LOG_DIR="$ROOT/.state/logs"
if [ "${SVC_INSTANCE:-}" = test ]; then
  # shellcheck source=/dev/null
  source "$ROOT/test/stack.env"
  declare -A SERVICE_PORT=([catalog]=$TEST_CATALOG_PORT [checkout]=$TEST_CHECKOUT_PORT [invalidator]=$TEST_INVALIDATOR_PORT)
  SVC_NAME_PREFIX=test-
else
  declare -A SERVICE_PORT=([catalog]=3001 [checkout]=3002 [invalidator]=3003)
  SVC_NAME_PREFIX=
fi
SERVICE_READY_TIMEOUT=${SERVICE_READY_TIMEOUT:-60}

svc_pid() { # prints the pid if our process for $1 is alive
  local f="$SVC_PID_DIR/$SVC_NAME_PREFIX$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null && grep -q "services/$1/src/main.ts" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

svc_start() {
  local s=$1 port=${SERVICE_PORT[$1]} pid t0
  mkdir -p "$SVC_PID_DIR" "$SVC_LOG_DIR"
  if pid=$(svc_pid "$s"); then
    echo "[services] $s already running (pid $pid)"
    return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "[services] ERROR: port $port for $s is in use by another program" >&2
    return 1
  fi
  t0=$(date +%s%3N)
  # register.ts turns OpenTelemetry on when OTEL_EXPORTER_OTLP_ENDPOINT is set. FLASHSALE_DEV=1: this is
  # the local development stack, where the public default ADMIN_TOKEN is allowed (packages/config).
  (cd "$ROOT" && PORT=$port OTEL_SERVICE_NAME="${OTEL_SERVICE_NAME:-$s}" FLASHSALE_DEV="${FLASHSALE_DEV:-1}" exec setsid node --import tsx --import ./packages/telemetry/src/register.ts \
    "services/$s/src/main.ts" >>"$SVC_LOG_DIR/$SVC_NAME_PREFIX$s.log" 2>&1) &
  echo $! >"$SVC_PID_DIR/$SVC_NAME_PREFIX$s.pid"
  local deadline=$(($(date +%s) + SERVICE_READY_TIMEOUT))
  until curl -fsS -m 1 "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    if ! svc_pid "$s" >/dev/null; then
      tail -n 30 "$SVC_LOG_DIR/$SVC_NAME_PREFIX$s.log" >&2
      echo "[services] ERROR: $s exited during start-up (log: .state/logs/$SVC_NAME_PREFIX$s.log)" >&2
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "$SVC_LOG_DIR/$SVC_NAME_PREFIX$s.log" >&2
      echo "[services] ERROR: $s not ready after ${SERVICE_READY_TIMEOUT}s (log: .state/logs/$SVC_NAME_PREFIX$s.log)" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "[services] $s ready on http://127.0.0.1:$port in $(($(date +%s%3N) - t0)) ms"
}

svc_stop() {
  local s=$1 pid i
  pid=$(svc_pid "$s") || { rm -f "$SVC_PID_DIR/$SVC_NAME_PREFIX$s.pid"; return 0; }
  echo "[services] stopping $s (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$SVC_PID_DIR/$SVC_NAME_PREFIX$s.pid"
}
