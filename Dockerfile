# syntax=docker/dockerfile:1
# One image for the three services and the migration step; docker-compose.yml and deploy/k8s pick
# the command:
#   node --import ./packages/telemetry/src/register.ts services/<catalog|checkout|invalidator>/src/main.ts
#   node packages/db/src/migrate-cli.ts   (then seed-cli.ts: the migration step, as the owner role)
# TypeScript runs through Node 24's own type stripping: no build output, no dev loader (tsx).
#
# Stages: fetch (pnpm fetch: the packages, keyed on the lockfile alone, so a source edit reuses
# the layer) -> build (every dependency; generates the Prisma client) -> prod (production
# dependencies only, installed offline from the fetched store) -> runtime (node + /app; no pnpm,
# no store, no dev dependencies; runs as the unprivileged user `node`).
# test/deploy/image.test.ts rehearses the prod stage natively (same context, install and prune) and
# starts every service and the migration step from it.
ARG NODE_IMAGE=node:24.19.0-bookworm-slim
ARG PNPM_VERSION=10.34.8

FROM ${NODE_IMAGE} AS pnpm
ARG PNPM_VERSION
RUN npm install -g "pnpm@${PNPM_VERSION}" && pnpm config set store-dir /pnpm/store
WORKDIR /app

FROM pnpm AS fetch
COPY pnpm-lock.yaml pnpm-workspace.yaml ./
RUN pnpm fetch

FROM fetch AS build
COPY . .
RUN pnpm install --offline --frozen-lockfile && pnpm db:generate

FROM fetch AS prod
COPY . .
# --prod still installs the Prisma CLI and TypeScript (optional peers of @prisma/client that the
# lockfile resolves) and all they pull in; the runtime never loads them: prune-peers drops them.
RUN pnpm install --offline --frozen-lockfile --prod && node deploy/image/prune-peers.mjs prisma typescript
COPY --from=build /app/packages/db/src/generated packages/db/src/generated

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production HOST=0.0.0.0
WORKDIR /app
# Owned by root, readable by all: the service user cannot modify its own code.
COPY --from=prod /app /app
USER node
EXPOSE 3001 3002 3003
# Liveness of whichever service runs here (PORT is set per service); readiness is /readyz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT ?? 3001}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--import", "./packages/telemetry/src/register.ts", "services/catalog/src/main.ts"]
