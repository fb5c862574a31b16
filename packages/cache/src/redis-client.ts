import { Cluster, Redis, type RedisOptions } from "ioredis";

/** A single Redis or a Redis Cluster: every key family is hash-tagged, so both work. */
export type RedisClient = Redis | Cluster;

export interface RedisClientOptions {
  url: string;
  /** host:port of cluster nodes; when given, a Cluster client is used and `url` is ignored. */
  clusterNodes?: string[];
  commandTimeoutMs: number;
  connectTimeoutMs?: number;
  /**
   * true: commands fail at once while disconnected (readers bypass to Postgres instead
   * of queueing); false: commands wait for the reconnect (the invalidator retries anyway).
   */
  failFast: boolean;
}

/** The one place that decides single node vs cluster (REDIS_CLUSTER_NODES). */
export function createRedisClient(o: RedisClientOptions): RedisClient {
  const redisOptions: RedisOptions = {
    commandTimeout: o.commandTimeoutMs,
    connectTimeout: o.connectTimeoutMs ?? 2_000,
    ...(o.failFast ? { maxRetriesPerRequest: 1, enableOfflineQueue: false } : {}),
  };
  if (o.clusterNodes && o.clusterNodes.length > 0) {
    const nodes = o.clusterNodes.map((n) => {
      const [host, port] = n.split(":");
      return { host: host ?? "127.0.0.1", port: Number(port ?? 6379) };
    });
    return new Cluster(nodes, { redisOptions, enableOfflineQueue: !o.failFast, slotsRefreshTimeout: 2_000 });
  }
  return new Redis(o.url, redisOptions);
}

/** Resolves once the client can serve commands (a cluster needs its slot map first). */
export async function redisReady(client: RedisClient, timeoutMs = 10_000): Promise<void> {
  if (client.status === "ready") return;
  await new Promise<void>((resolve, reject) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off("ready", onReady);
      reject(new Error(`redis not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    client.once("ready", onReady);
  });
}

/** The master nodes (one connection each) for per-node work: SCAN, tracking subscriptions. */
export function masterNodes(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes("master") : [client];
}
