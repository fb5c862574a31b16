import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/client.ts";

export type Db = ReturnType<typeof createDb>;

export interface DbOptions {
  url: string;
  /** Upper bound of pooled connections for this process. */
  poolMax?: number;
  /** Every query is bounded: a statement running longer is cancelled by Postgres. */
  statementTimeoutMs?: number;
  /** Waiting for a pooled connection is bounded too. */
  connectTimeoutMs?: number;
  /**
   * How long the client waits for an answer at all (default: the statement timeout + 1 s). The
   * statement timeout is enforced by the server, so a server that does not answer (a SIGSTOPped or
   * frozen Postgres, a silently dropped connection) would hang an established connection for ever;
   * this bounds it on our side, and the pool then discards that connection.
   */
  readTimeoutMs?: number;
  /** Called once per query (raw or not, in transactions too), e.g. to count queries per request. */
  onQuery?: () => void;
}

/** One PrismaClient per service process, created in main.ts and passed down (no singletons). */
export function createDb(opts: DbOptions) {
  const adapter = new PrismaPg({
    connectionString: opts.url,
    max: opts.poolMax ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 2_000,
    statement_timeout: opts.statementTimeoutMs ?? 5_000,
    query_timeout: opts.readTimeoutMs ?? (opts.statementTimeoutMs ?? 5_000) + 1_000,
  });
  const onQuery = opts.onQuery ?? (() => {});
  return new PrismaClient({ adapter }).$extends({
    query: {
      $allOperations({ args, query }) {
        onQuery();
        return query(args);
      },
    },
  });
}
