import { demandKeys, type RedisClient } from "@flashsale/cache";
import { type Db, findProduct } from "@flashsale/db";
import { PRODUCT_ENTITY, type ProductCache } from "@flashsale/product-cache";
import type { Logger } from "@flashsale/telemetry";
import { Counter, type Registry } from "prom-client";

export interface WarmUpOptions {
  redis: RedisClient;
  db: Db;
  cache: ProductCache;
  schemaVersion: number;
  logger: Logger;
  metrics: Registry;
  /** How many of the hottest products a cold start warms. */
  top: number;
  /** Postgres reads per second the warm-up may spend (0 = warm-up off; demand is still tracked). */
  ratePerSec: number;
  /** How often this catalog's counts go to Redis, and the cold-start check runs. Default 1 s. */
  everyMs?: number;
  /** Demand halves every this long (recent demand counts most). Default 5 min. */
  halfLifeMs?: number;
}

const MAX_TRACKED = 10_000;
const CONCURRENCY = 8;

/**
 * Demand tracking and prioritized warm-up (docs/architecture.md#warm-up).
 *
 * Demand: every product read is counted in process (`record`, a Map increment); every second the
 * counts go to one Redis sorted set shared by all catalogs (ZINCRBY, pipelined), halved every
 * half-life by one catalog (ZUNIONSTORE with weight 0.5 under a lock) and trimmed to the top 10,000.
 * Each catalog keeps the same decayed scores in process, which survive a Redis flush or restart.
 *
 * Cold start: every second each catalog does `SET warmed NX` on its schema version's marker; the one
 * that creates it (Redis lost its data, or the version is new) warms: the hottest `top` ids (Redis'
 * demand merged with its own), hottest first, read through the cache (the lease protocol: one
 * Postgres read per key across the fleet), at most `ratePerSec` Postgres reads per second, so the
 * warm-up never competes with the live load for more than that.
 */
export class DemandWarmUp {
  private readonly opts: Required<Pick<WarmUpOptions, "everyMs" | "halfLifeMs">> & WarmUpOptions;
  private readonly keys: ReturnType<typeof demandKeys>;
  private pending = new Map<number, number>();
  private readonly local = new Map<number, number>();
  private timer: NodeJS.Timeout | null = null;
  private lastDecay = performance.now();
  private warming = false;
  private readonly warmed: Counter;

  constructor(opts: WarmUpOptions) {
    this.opts = { everyMs: 1_000, halfLifeMs: 300_000, ...opts };
    this.keys = demandKeys(PRODUCT_ENTITY, opts.schemaVersion);
    this.warmed = new Counter({
      name: "catalog_warmup_products_total",
      help: "Products read into the cache by a warm-up after a cold start",
      registers: [opts.metrics],
    });
  }

  /** One read of `id` by a client (the route calls it; warm-up reads are not demand). */
  record(id: number): void {
    this.pending.set(id, (this.pending.get(id) ?? 0) + 1);
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.everyMs);
    this.timer.unref();
    void this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Whether a warm-up is running now (tests, metrics). */
  get isWarming(): boolean {
    return this.warming;
  }

  private async tick(): Promise<void> {
    try {
      await this.flushDemand();
      if (this.opts.ratePerSec > 0 && !this.warming) {
        const created = await this.opts.redis.set(this.keys.warmed, String(Date.now()), "NX");
        // A failed warm-up (e.g. Redis gone mid-way) is logged, never an unhandled rejection (it would end the process).
        if (created === "OK") this.warm().catch((err: Error) => this.opts.logger.warn({ err: err.message }, "warm-up failed"));
      }
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, "demand tracking");
    }
  }

  private async flushDemand(): Promise<void> {
    const now = performance.now();
    const halve = now - this.lastDecay >= this.opts.halfLifeMs;
    if (halve) {
      this.lastDecay = now;
      for (const [id, s] of this.local) this.local.set(id, s / 2);
    }
    const counts = this.pending;
    this.pending = new Map();
    for (const [id, n] of counts) this.local.set(id, (this.local.get(id) ?? 0) + n);
    if (this.local.size > MAX_TRACKED * 2) {
      const keep = [...this.local.entries()].sort((a, b) => b[1] - a[1]).slice(0, MAX_TRACKED);
      this.local.clear();
      for (const [id, s] of keep) this.local.set(id, s);
    }
    const r = this.opts.redis;
    if (counts.size > 0) {
      const p = r.pipeline();
      for (const [id, n] of counts) p.zincrby(this.keys.demand, n, String(id));
      p.zremrangebyrank(this.keys.demand, 0, -(MAX_TRACKED + 1));
      await p.exec();
    }
    // One catalog halves the shared counts per half-life.
    if (halve && (await r.set(this.keys.decay, "1", "PX", Math.floor(this.opts.halfLifeMs * 0.9), "NX")) === "OK") {
      await r.zunionstore(this.keys.demand, 1, this.keys.demand, "WEIGHTS", 0.5, "AGGREGATE", "SUM");
    }
  }

  /** The ids to warm, hottest first: the shared demand merged with this catalog's own. */
  private async candidates(): Promise<number[]> {
    const shared = await this.opts.redis.zrevrange(this.keys.demand, 0, this.opts.top - 1, "WITHSCORES");
    const score = new Map<number, number>();
    for (let i = 0; i + 1 < shared.length; i += 2) score.set(Number(shared[i]), Number(shared[i + 1]));
    for (const [id, s] of this.local) score.set(id, Math.max(score.get(id) ?? 0, s));
    return [...score.entries()]
      .filter(([id]) => Number.isInteger(id) && id > 0)
      .sort((a, b) => b[1] - a[1])
      .slice(0, this.opts.top)
      .map(([id]) => id);
  }

  private async warm(): Promise<void> {
    this.warming = true;
    const started = performance.now();
    let done = 0;
    let failed = 0;
    try {
      const ids = await this.candidates();
      this.opts.logger.info({ products: ids.length, ratePerSec: this.opts.ratePerSec }, "cold cache: warming the hottest products first");
      const intervalMs = 1000 / this.opts.ratePerSec;
      let next = 0;
      // CONCURRENCY workers take ids in order; each read starts no earlier than its slot of the rate.
      const worker = async () => {
        for (;;) {
          const i = next++;
          const id = ids[i];
          if (id === undefined || failed > 20) return;
          const due = started + i * intervalMs;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          try {
            await this.opts.cache.read(id, () => findProduct(this.opts.db, id));
            done++;
            this.warmed.inc();
          } catch {
            failed++;
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      this.warming = false;
      this.opts.logger.info({ warmed: done, failed, ms: Math.round(performance.now() - started) }, "warm-up done");
    }
  }
}
