import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/client.ts";

export type Db = PrismaClient;

export interface DbOptions {
  url: string;
  /** Upper bound of pooled connections for this process. */
  poolMax?: number;
  /** Every query is bounded: a statement running longer is cancelled by Postgres. */
  statementTimeoutMs?: number;
  /** Waiting for a pooled connection is bounded too. */
  connectTimeoutMs?: number;
}

/** One PrismaClient per service process, created in main.ts and passed down (no singletons). */
export function createDb(opts: DbOptions): Db {
  const adapter = new PrismaPg({
    connectionString: opts.url,
    max: opts.poolMax ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 2_000,
    statement_timeout: opts.statementTimeoutMs ?? 5_000,
  });
  return new PrismaClient({ adapter });
}
