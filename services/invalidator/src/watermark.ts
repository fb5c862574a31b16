import { publishWatermark, type RedisClient, readWatermarkAgeMs, recordPartitionHeartbeat, redisNowMs } from "@flashsale/cache";
import type { Logger } from "@flashsale/telemetry";
import { Partitioners } from "kafkajs";
import type pg from "pg";
import { Gauge, type Registry } from "prom-client";

/**
 * The freshness watermark producer (docs/architecture.md#freshness).
 *
 * Debezium's heartbeat.action.query bumps every `cdc_heartbeat` row every heartbeat.interval.ms;
 * the rows are routed into the products topic keyed `{"id": N}` exactly like products, so the
 * connector's producer sends row N to the partition product N goes to (murmur2 of the key). We keep
 * one row per partition (`ensureHeartbeatRows`). Kafka orders each partition, and Debezium emits
 * in commit order, so once a heartbeat committed at DB time T is applied on partition p (every
 * message before it applied to Redis), every change on p committed before T has been evicted. The
 * minimum of that over ALL partitions (kept per partition in Redis, so several invalidators of one
 * group combine) is the watermark on the DB clock; it is moved to Redis's clock with the lowest
 * DB->Redis offset our bracketing round trips allow, minus a slack for commit timestamps taken a
 * moment before the commit record is written. Skew can only make the watermark older, never newer.
 */
export interface WatermarkProducer {
  /** Every message of `partition` up to and including a heartbeat committed at `dbMs` is applied. */
  heartbeatApplied(partition: number, dbMs: number): Promise<void>;
  /** The products topic now has `n` partitions (partitions were added): the minimum covers them all. */
  setPartitions(n: number): void;
  stop(): void;
}

/** Commit timestamps are taken just before the commit record is written: allow this much reordering. */
export const COMMIT_ORDER_SLACK_MS = 100;

/** The smallest heartbeat row id whose key lands on each partition of a topic of `partitions`. */
export function heartbeatIdsFor(partitions: number): Map<number, number> {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({
    partitionId: i,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
  const ids = new Map<number, number>();
  for (let id = 1; ids.size < partitions && id < 100_000; id++) {
    const p = partitioner({ topic: "t", partitionMetadata, message: { key: JSON.stringify({ id }), value: null } });
    if (!ids.has(p)) ids.set(p, id);
  }
  return ids;
}

/** Inserts the heartbeat rows the topic needs (one per partition); leaves other rows alone. */
export async function ensureHeartbeatRows(pool: pg.Pool, partitions: number): Promise<void> {
  for (const [partition, id] of heartbeatIdsFor(partitions)) {
    await pool.query("INSERT INTO cdc_heartbeat (id, partition) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET partition = $2", [
      id,
      partition,
    ]);
  }
}

/**
 * DB->Redis clock offset, measured by bracketing a DB clock read between two Redis TIME reads:
 * the DB read happened between them, so offset >= t0 - db. We keep that lower bound (from the
 * tightest of a few samples), re-measured every `intervalMs`; it is unusable after `maxAgeMs`.
 */
export function measureClockOffset(opts: { redis: RedisClient; pool: pg.Pool; intervalMs?: number; maxAgeMs?: number; logger: Logger }) {
  let best: { lowMs: number; bracketMs: number; at: number } | null = null;
  const measure = async () => {
    let round: { lowMs: number; bracketMs: number } | null = null;
    for (let i = 0; i < 3; i++) {
      const t0 = await redisNowMs(opts.redis);
      const { rows } = await opts.pool.query<{ ms: number }>("SELECT extract(epoch FROM clock_timestamp()) * 1000 AS ms");
      const t1 = await redisNowMs(opts.redis);
      const db = Number(rows[0]?.ms);
      const sample = { lowMs: t0 - db, bracketMs: t1 - t0 };
      if (!round || sample.bracketMs < round.bracketMs) round = sample;
    }
    if (round) best = { ...round, at: performance.now() };
  };
  const tick = () => measure().catch((err) => opts.logger.warn({ err: (err as Error).message }, "DB<->Redis clock offset not measured"));
  const timer = setInterval(tick, opts.intervalMs ?? 5_000);
  timer.unref();
  return {
    first: tick(),
    /** The offset's lower bound (Redis ms - DB ms), or null when no recent measurement exists. */
    lowerBoundMs(): number | null {
      if (!best || performance.now() - best.at > (opts.maxAgeMs ?? 30_000)) return null;
      // Clocks drift between measurements (<= 0.1 ms/s for any sane clock): give that away too.
      return best.lowMs - Math.ceil((performance.now() - best.at) / 1000) * 0.1;
    },
    bracketMs: () => best?.bracketMs ?? null,
    stop: () => clearInterval(timer),
  };
}

export function startWatermarkProducer(opts: {
  redis: RedisClient;
  pool: pg.Pool;
  /** Identifies the topic's per-partition heartbeat record in Redis. */
  topic: string;
  partitions: number;
  metrics: Registry;
  logger: Logger;
}): WatermarkProducer {
  const offset = measureClockOffset(opts);
  let partitions = opts.partitions;
  const age = new Gauge({
    name: "invalidator_freshness_watermark_age_seconds",
    help: "Age of the published freshness watermark on Redis's clock (every committed change older than it is evicted); alert when it exceeds the catalogs' bound",
    registers: [opts.metrics],
  });
  const offsetGauge = new Gauge({
    name: "invalidator_clock_offset_uncertainty_seconds",
    help: "Width of the tightest DB<->Redis clock bracket (round trip), given away by the watermark",
    registers: [opts.metrics],
  });
  const timer = setInterval(async () => {
    try {
      const a = await readWatermarkAgeMs(opts.redis);
      age.set(a === null ? Number.NaN : a / 1000);
      const b = offset.bracketMs();
      if (b !== null) offsetGauge.set(b / 1000);
    } catch {
      age.set(Number.NaN);
    }
  }, 1_000);
  timer.unref();

  return {
    async heartbeatApplied(partition, dbMs) {
      const perPartition = await recordPartitionHeartbeat(opts.redis, opts.topic, partition, dbMs);
      let min = Number.POSITIVE_INFINITY;
      for (let p = 0; p < partitions; p++) min = Math.min(min, perPartition.get(p) ?? Number.NEGATIVE_INFINITY);
      const low = offset.lowerBoundMs();
      if (!Number.isFinite(min) || low === null) return; // a partition never heard from, or no clock: publish nothing
      await publishWatermark(opts.redis, min + low - COMMIT_ORDER_SLACK_MS);
    },
    setPartitions(n) {
      partitions = Math.max(partitions, n);
    },
    stop() {
      clearInterval(timer);
      offset.stop();
    },
  };
}
