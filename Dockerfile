# One image for the three services (docker-compose picks the entry point).
# TypeScript runs through tsx, as natively; there is no separate build output.
FROM node:20-bookworm-slim
WORKDIR /app
RUN npm install -g pnpm@10.34.8
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json ./
COPY packages ./packages
COPY services ./services
RUN pnpm install --frozen-lockfile && pnpm db:generate
ENV NODE_ENV=production
