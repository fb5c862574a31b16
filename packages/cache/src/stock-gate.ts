import type { RedisClient } from "./redis-client.ts";

/**
 * Redis stock gate (docs/architecture.md#stock-gate): turns buyers of a sold-out item away
 * before they reach Postgres. Postgres stays the arbiter — its conditional
 * `UPDATE inventory ... WHERE available >= q` decides every sale — so the gate can
 * never cause an oversell; it only keeps a 500-buyer rush on 50 units from becoming
 * 500 contended transactions.
 *
 * Per product, in one hash slot:
 *   `stock:{product:<id>}:avail`  Postgres' `available` as last synced (initialised from
 *                                 Postgres on demand, overwritten by the invalidator from
 *                                 inventory change events, and lowered to the value a
 *                                 committing checkout read back — never decremented blindly,
 *                                 so a sync and a release for the same commit cannot both count it)
 *   `stock:{product:<id>}:holds`  reservations in flight, "<token>:<qty>" scored by expiry
 *   `stock:{product:<id>}:confirmed` present while a sold-out answer was checked against Postgres recently
 * A buyer passes if avail - (sum of live holds) >= qty. Holds expire on their own, so a
 * crashed checkout cannot leak units for longer than the hold TTL.
 */
const RESERVE = `
local avail = redis.call('GET', KEYS[1])
if not avail then return -1 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
local held = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  held = held + tonumber(string.match(m, ':(%d+)$'))
end
if tonumber(avail) - held < tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
`;

// ARGV[2]: Postgres' available right after the commit, or '' when nothing was committed.
// Checkouts only lower the stock, so the lowest value read back is the newest.
const RELEASE = `
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then
  local avail = redis.call('GET', KEYS[1])
  if avail and tonumber(avail) > tonumber(ARGV[2]) then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') end
end
return removed
`;

// A sold-out answer confirmed against Postgres: raise `avail` to Postgres' value if it is higher.
const RAISE = `
local avail = redis.call('GET', KEYS[1])
if avail and tonumber(avail) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

interface GateCommands {
  fsGateReserve(
    avail: string,
    holds: string,
    member: string,
    qty: string,
    now: string,
    expiresAt: string,
    holdsTtl: string,
  ): Promise<-1 | 0 | 1>;
  fsGateRelease(avail: string, holds: string, member: string, availableAfter: string): Promise<0 | 1>;
  fsGateRaise(avail: string, available: string, ttlMs: string): Promise<0 | 1>;
}

export type ReserveResult = "reserved" | "sold_out";

export interface StockGateOptions {
  /** How long a reservation holds units if its checkout never reports back. */
  holdTtlMs?: number;
  /** TTL of the synced `avail` value (every key has a TTL: volatile-lfu may evict it; it is re-read from Postgres). */
  availTtlMs?: number;
  /**
   * A sold-out answer is confirmed against Postgres at most once per this interval per product
   * (0: never). Bounds how long the gate can refuse buyers after a restock it missed.
   */
  confirmSoldOutMs?: number;
  now?: () => number;
}

export class StockGate {
  private readonly redis: RedisClient & GateCommands;
  private readonly holdTtlMs: number;
  private readonly availTtlMs: number;
  private readonly confirmSoldOutMs: number;
  private readonly now: () => number;

  constructor(redis: RedisClient, opts: StockGateOptions = {}) {
    const r = redis as RedisClient & Partial<GateCommands>;
    if (typeof r.fsGateReserve !== "function") {
      redis.defineCommand("fsGateReserve", { numberOfKeys: 2, lua: RESERVE });
      redis.defineCommand("fsGateRelease", { numberOfKeys: 2, lua: RELEASE });
      redis.defineCommand("fsGateRaise", { numberOfKeys: 1, lua: RAISE });
    }
    this.redis = r as RedisClient & GateCommands;
    this.holdTtlMs = opts.holdTtlMs ?? 10_000;
    this.availTtlMs = opts.availTtlMs ?? 3_600_000;
    this.confirmSoldOutMs = opts.confirmSoldOutMs ?? 1_000;
    this.now = opts.now ?? Date.now;
  }

  static keys(productId: number): { avail: string; holds: string; confirmed: string } {
    return {
      avail: `stock:{product:${productId}}:avail`,
      holds: `stock:{product:${productId}}:holds`,
      confirmed: `stock:{product:${productId}}:confirmed`,
    };
  }

  /**
   * Reserves `qty` units for `token`. `availableInDb` is called when the gate does not
   * know the product yet (first buyer, or the key expired/was evicted).
   */
  async reserve(productId: number, qty: number, token: string, availableInDb: () => Promise<number>): Promise<ReserveResult> {
    const k = StockGate.keys(productId);
    for (let attempt = 0; attempt < 2; attempt++) {
      const now = this.now();
      const r = await this.redis.fsGateReserve(
        k.avail,
        k.holds,
        `${token}:${qty}`,
        String(qty),
        String(now),
        String(now + this.holdTtlMs),
        String(this.holdTtlMs * 2),
      );
      if (r === 1) return "reserved";
      if (r === 0) {
        // The gate's `avail` has no order with the CDC sync: a checkout's release (the stock read
        // back after its commit) can land after the sync of a later restock and set the gate back to
        // 0. So a sold-out answer is checked against Postgres, once per interval per product
        // (docs/architecture.md#stock-gate); a refused buyer otherwise never reaches Postgres.
        if (attempt === 0 && (await this.confirmDue(k.confirmed)) && (await this.raise(k.avail, await availableInDb()))) continue;
        return "sold_out";
      }
      // Unknown product: learn it from Postgres (NX: a concurrent initialiser or the invalidator may win).
      await this.redis.set(k.avail, String(await availableInDb()), "PX", this.availTtlMs, "NX");
    }
    return "sold_out";
  }

  private async confirmDue(key: string): Promise<boolean> {
    if (this.confirmSoldOutMs <= 0) return false;
    return (await this.redis.set(key, "1", "PX", this.confirmSoldOutMs, "NX")) === "OK";
  }

  private async raise(availKey: string, available: number): Promise<boolean> {
    return (await this.redis.fsGateRaise(availKey, String(available), String(this.availTtlMs))) === 1;
  }

  /**
   * Ends a reservation. `availableAfter`: the order committed and Postgres had this many
   * units left right after it (from UPDATE ... RETURNING); omitted when nothing was committed.
   */
  async release(productId: number, qty: number, token: string, availableAfter?: number): Promise<void> {
    const k = StockGate.keys(productId);
    await this.redis.fsGateRelease(k.avail, k.holds, `${token}:${qty}`, availableAfter === undefined ? "" : String(availableAfter));
  }

  /** The inventory row is gone: forget what we knew (the next reservation re-reads Postgres). */
  async forget(productId: number): Promise<void> {
    await this.redis.del(StockGate.keys(productId).avail);
  }

  /** From an inventory change event: Postgres' `available` after the change. */
  async sync(productId: number, available: number): Promise<void> {
    await this.redis.set(StockGate.keys(productId).avail, String(available), "PX", this.availTtlMs);
  }
}
