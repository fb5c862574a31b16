# shellcheck shell=bash
# Sourced by scripts/up and scripts/test: makes the Node side ready on a fresh
# machine (pnpm, dependencies, Prisma client). Idempotent and quick when done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PNPM_VERSION=10.34.8
cd "$ROOT"

say() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

command -v node >/dev/null || { echo "node not found: install Node.js 20.19+ (Debian: apt-get install nodejs)" >&2; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
  { echo "Node.js $(node --version) is too old: need 20.19+" >&2; exit 1; }

if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  say "installing pnpm $PNPM_VERSION (npm -g)"
  npm install -g --silent "pnpm@$PNPM_VERSION" >/dev/null
fi

say "installing node dependencies (pnpm install --frozen-lockfile)"
pnpm install --frozen-lockfile --reporter=silent
say "generating the Prisma client (offline)"
pnpm --silent db:generate >/dev/null
