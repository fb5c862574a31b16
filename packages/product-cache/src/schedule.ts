import type { CacheRead, CacheSource, EntityKeys, VersionedCache } from "@flashsale/cache";
import { type Db, type DbNow, dbClock, type Product, type ProductRecord, probeDbClock } from "@flashsale/db";

/**
 * Price schedule at read time (docs/architecture.md#price-schedule-and-the-db-clock). The cache
 * holds a product's schedule (ProductRecord: list price, sale price and window), which only a write
 * changes; the effective price and validUntil are computed here, at the DB clock, when a response
 * is built. A sale starting or ending therefore expires no entry in any tier, and no tier can serve
 * the wrong side of a boundary: the side is decided per response, not per fill.
 */

/** The effective price over one stretch of the schedule: [from, until), epoch ms on the DB clock. */
export interface Phase {
  priceCents: number;
  from: number;
  until: number;
}

type Schedule = Pick<ProductRecord, "listPriceCents" | "sale">;

/** The same rule as the SQL functions product_effective_price_cents / product_next_price_boundary. */
export function phaseAt(r: Schedule, t: number): Phase {
  if (r.sale === null) return { priceCents: r.listPriceCents, from: Number.NEGATIVE_INFINITY, until: Number.POSITIVE_INFINITY };
  const starts = Date.parse(r.sale.startsAt);
  const ends = Date.parse(r.sale.endsAt);
  if (t < starts) return { priceCents: r.listPriceCents, from: Number.NEGATIVE_INFINITY, until: starts };
  if (t < ends) return { priceCents: r.sale.priceCents, from: starts, until: ends };
  return { priceCents: r.listPriceCents, from: ends, until: Number.POSITIVE_INFINITY };
}

/** The effective price of a schedule at DB-clock instant `t` (the consistency checker uses it too). */
export function effectivePriceCents(r: Schedule, t: number): number {
  return phaseAt(r, t).priceCents;
}

/**
 * Which phase holds for every instant of `now` (an interval surely containing the DB clock), or,
 * when a boundary lies inside it, how many ms to wait until the interval is past that boundary.
 */
export function settle(r: Schedule, now: DbNow): Phase | { waitMs: number } {
  const p = phaseAt(r, now.lo);
  if (now.hi < p.until) return p;
  return { waitMs: p.until - now.lo };
}

/** The Product shape of a schedule in one phase. Key order = the schema's (the body is the contract's JSON). */
export function productAt(r: ProductRecord, p: Phase): Product {
  return {
    id: r.id,
    sku: r.sku,
    name: r.name,
    description: r.description,
    currency: r.currency,
    priceCents: p.priceCents,
    listPriceCents: r.listPriceCents,
    sale: r.sale,
    version: r.version,
    updatedAt: r.updatedAt,
    validUntil: Number.isFinite(p.until) ? new Date(p.until).toISOString() : null,
  };
}

/** The cached form of a product read from Postgres: its schedule, without the clock-dependent fields. */
export function toRecord(p: Product): ProductRecord {
  return {
    id: p.id,
    sku: p.sku,
    name: p.name,
    description: p.description,
    currency: p.currency,
    listPriceCents: p.listPriceCents,
    sale: p.sale,
    version: p.version,
    updatedAt: p.updatedAt,
  };
}

/**
 * A response for one cached record in one phase: the Product, its JSON body and ETag, built once
 * and reused while the DB clock stays inside [from, until) (the next boundary).
 */
export interface ProductView {
  product: Product;
  body: string;
  etag: string;
  from: number;
  until: number;
}

/**
 * The ETag names the representation, not only the row: a sale starting or ending changes the price
 * without a write (the version stays), so while a boundary is scheduled the ETag carries it too.
 * Otherwise a client revalidating after a sale ended would get 304 and keep the sale price.
 */
function etagOf(version: number, until: number): string {
  return Number.isFinite(until) ? `"${version}.${until}"` : `"${version}"`;
}

function viewOf(r: ProductRecord, p: Phase): ProductView {
  const product = productAt(r, p);
  return { product, body: JSON.stringify(product), etag: etagOf(r.version, p.until), from: p.from, until: p.until };
}

/** The DB clock as the product cache uses it. */
export interface ProductClock {
  /** An interval containing the DB clock now; null when never calibrated. */
  now(): DbNow | null;
  /** Take a sample now (coalesced). */
  calibrate(): Promise<void>;
}

export interface DbClockSourceOptions {
  /** Re-sample (in the background, coalesced) when no product read has sampled for this long. Default 10 s. */
  refreshAfterMs?: number;
  onError?(err: unknown): void;
}

/**
 * The process's DB clock estimate (packages/db db-clock.ts), fed by every product read, and with
 * `db` also by a probe (`SELECT clock_timestamp()`) when no read has sampled for `refreshAfterMs`:
 * a catalog that only serves hits still re-samples, so drift cannot widen the interval unboundedly.
 */
export function dbClockSource(db: Db | null, opts: DbClockSourceOptions = {}): ProductClock {
  const refreshAfterMs = opts.refreshAfterMs ?? 10_000;
  let probing: Promise<void> | null = null;
  const calibrate = (): Promise<void> => {
    if (!db) return Promise.resolve();
    probing ??= probeDbClock(db)
      .catch((err) => opts.onError?.(err))
      .finally(() => {
        probing = null;
      });
    return probing;
  };
  return {
    now() {
      if (db && probing === null && dbClock.sampleAgeMs() > refreshAfterMs) void calibrate();
      return dbClock.now();
    },
    calibrate,
  };
}

/** What a catalog read returns: the view to send (null: no such product), and which tier answered. */
export interface ProductRead {
  view: ProductView | null;
  source: CacheSource;
  ageMs: number;
}

/**
 * The product cache both services use: the versioned cache of schedules underneath, the effective
 * price on top. Implements VersionedCache<Product> (checkout's display reads), plus `read` for the
 * catalog's hot path, which reuses one serialized body per cached record and phase.
 */
export class ProductCache implements VersionedCache<Product> {
  /**
   * The last view built per product id, reused while the record has the same version (every write
   * moves the version, from one sequence: same version, same content) and the DB clock is inside
   * the view's phase. Keyed by id, not by the record object, so a Redis hit (a freshly parsed
   * record) reuses it too. Bounded: the oldest entries go first.
   */
  private readonly views = new Map<number, ProductView>();
  private static readonly MAX_VIEWS = 20_000;
  /** Responses that waited out a boundary inside the clock's uncertainty. */
  boundaryWaits = 0;
  /** Responses decided at the app's wall clock because the DB clock was never sampled (Postgres unreachable since start). */
  uncalibrated = 0;

  private readonly inner: VersionedCache<ProductRecord>;
  private readonly clock: ProductClock;

  constructor(inner: VersionedCache<ProductRecord>, clock: ProductClock) {
    this.inner = inner;
    this.clock = clock;
  }

  keys(id: string | number): EntityKeys {
    return this.inner.keys(id);
  }

  get redisCircuit(): string {
    return this.inner.redisCircuit;
  }

  async read(id: string | number, load: () => Promise<Product | null>): Promise<ProductRead> {
    const r = await this.inner.get(id, () => load().then((p) => (p ? toRecord(p) : null)));
    if (r.value === null) return { view: null, source: r.source, ageMs: r.ageMs };
    const memo = this.views.get(r.value.id);
    const now = this.clock.now();
    const view =
      memo && memo.product.version === r.value.version && now && now.lo >= memo.from && now.hi < memo.until
        ? memo
        : await this.resolve(r.value);
    return { view, source: r.source, ageMs: r.ageMs };
  }

  async get(id: string | number, load: () => Promise<Product | null>): Promise<CacheRead<Product>> {
    const r = await this.read(id, load);
    return { value: r.view?.product ?? null, source: r.source, ageMs: r.ageMs };
  }

  /**
   * The view at the DB clock. When a boundary lies inside the clock's uncertainty (about one
   * round trip to Postgres), wait until it has surely passed and answer with the later phase: the
   * answer is then true at the instant it is sent.
   */
  private async resolve(record: ProductRecord): Promise<ProductView> {
    let recalibrated = false;
    for (;;) {
      let now = this.clock.now();
      if (now === null) {
        await this.clock.calibrate();
        now = this.clock.now();
      }
      if (now === null) {
        this.uncalibrated++;
        const t = Date.now();
        now = { lo: t, hi: t };
      }
      const settled = settle(record, now);
      if ("waitMs" in settled) {
        // A wide interval (the last samples came from slow queries): one fresh sample first.
        if (settled.waitMs > 50 && !recalibrated) {
          recalibrated = true;
          await this.clock.calibrate();
          continue;
        }
        this.boundaryWaits++;
        await new Promise((resolve) => setTimeout(resolve, Math.max(1, Math.ceil(settled.waitMs))));
        continue;
      }
      const view = viewOf(record, settled);
      if (this.views.size >= ProductCache.MAX_VIEWS && !this.views.has(record.id)) {
        const oldest = this.views.keys().next().value;
        if (oldest !== undefined) this.views.delete(oldest);
      }
      this.views.set(record.id, view);
      return view;
    }
  }
}
