import type { Redis } from "ioredis";

export interface InvalidationSink {
  invalidate(key: string): void;
  setEnabled(enabled: boolean): void;
}

const CHANNEL = "__redis__:invalidate";
const SIBLING_SUFFIX = /:(lease|fence)$/;

/**
 * Keeps an L1 coherent with Redis server-assisted invalidation (design.md §4.5):
 * one dedicated connection turns on CLIENT TRACKING in BCAST mode for our key
 * prefix, redirected to itself, then subscribes to `__redis__:invalidate`. Redis
 * then pushes the name of every key under the prefix that anybody modifies or
 * that expires or is evicted.
 *
 * The L1 is usable only while that channel is up: on any disconnect it is flushed
 * and disabled, and on (re)connect tracking is re-established before it is
 * enabled again (a message lost while away could otherwise leave a stale entry).
 */
export class L1Invalidations {
  private readonly conn: Redis;
  private readonly sinks = new Set<InvalidationSink>();
  private up = false;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly onError: (err: Error) => void = () => {},
  ) {
    // Our own connection: subscribe mode blocks other commands, and we re-subscribe ourselves.
    // RESP2 on purpose: ioredis (v6, RESP3 by default) drops RESP3 `invalidate` pushes, while
    // in RESP2 Redis delivers them as ordinary pub/sub messages to the redirect target.
    this.conn = redis.duplicate({
      protocol: 2,
      autoResubscribe: false,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      lazyConnect: true,
    });
    this.conn.on("ready", () => void this.establish());
    for (const ev of ["close", "end", "reconnecting"]) this.conn.on(ev, () => this.setUp(false));
    this.conn.on("error", (err: Error) => this.onError(err));
    this.conn.on("messageBuffer", (channel: Buffer, message: unknown) => {
      if (channel.toString() === CHANNEL) this.onMessage(message);
    });
  }

  attach(sink: InvalidationSink): void {
    this.sinks.add(sink);
    sink.setEnabled(this.up);
  }

  get isUp(): boolean {
    return this.up;
  }

  async start(): Promise<void> {
    await this.conn.connect().catch((err: Error) => this.onError(err));
  }

  async stop(): Promise<void> {
    this.setUp(false);
    await this.conn.quit().catch(() => this.conn.disconnect());
  }

  private async establish(): Promise<void> {
    try {
      const id = await this.conn.client("ID");
      await this.conn.call("CLIENT", "TRACKING", "ON", "REDIRECT", String(id), "BCAST", "PREFIX", this.prefix);
      await this.conn.subscribe(CHANNEL);
      this.setUp(true);
    } catch (err) {
      this.onError(err as Error);
      this.setUp(false);
      this.conn.disconnect(true); // reconnect and try again
    }
  }

  private setUp(up: boolean): void {
    this.up = up;
    for (const s of this.sinks) s.setEnabled(up);
  }

  private onMessage(message: unknown): void {
    // RESP2 delivers the key list as an array; null means FLUSHALL/FLUSHDB.
    if (message === null || message === undefined) {
      for (const s of this.sinks) {
        s.setEnabled(false);
        s.setEnabled(this.up);
      }
      return;
    }
    const keys = Array.isArray(message) ? message : [message];
    for (const raw of keys) {
      const key = String(raw).replace(SIBLING_SUFFIX, "");
      for (const s of this.sinks) s.invalidate(key);
    }
  }
}
