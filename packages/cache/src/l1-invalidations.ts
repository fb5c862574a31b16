import { randomUUID } from "node:crypto";
import { Cluster, type Redis } from "ioredis";
import { tagForSlot, valueKeyOf } from "./keys.ts";
import { masterNodes, type RedisClient, redisReady } from "./redis-client.ts";

export interface InvalidationSink {
  invalidate(key: string): void;
  setEnabled(enabled: boolean): void;
}

const CHANNEL = "__redis__:invalidate";

/**
 * The end-to-end check of the channel (docs/architecture.md#l1-coherence): a key of this process's
 * own under the tracked prefix is written every `everyMs`; its invalidation must be heard within
 * `deadlineMs`, else the channel counts as dead (a silently dropped connection: no FIN, no RST, TCP
 * keepalive would take minutes): L1 off, tracking connections re-made.
 */
export interface CanaryOptions {
  everyMs?: number;
  deadlineMs?: number;
}

/**
 * Keeps an L1 coherent with Redis server-assisted invalidation (docs/architecture.md#l1-coherence):
 * per Redis master, one dedicated connection turns on CLIENT TRACKING in BCAST mode for our
 * key prefixes (keys.ts `keyPrefix`, one per live schema version), redirected to itself, then
 * subscribes to `__redis__:invalidate`.
 * Redis then pushes the name of every key under a prefix that anybody modifies, or
 * that expires or is evicted. (On a Redis Cluster each master only reports its own
 * keys, hence one connection per master; the topology is read at start.)
 *
 * The L1 is usable only while every channel is up: on any disconnect it is flushed
 * and disabled, and on (re)connect tracking is re-established before it is enabled
 * again (a message lost while away could otherwise leave a stale entry).
 */
export class L1Invalidations {
  private conns: Redis[] = [];
  private readonly upConns = new Set<Redis>();
  private readonly sinks = new Set<InvalidationSink>();
  private up = false;
  private readonly canary: { id: string; everyMs: number; deadlineMs: number } | null;
  private canaryTimer: NodeJS.Timeout | null = null;
  /**
   * Per tracking connection: its canary key (on a Cluster, one in a slot of that connection's master),
   * when its invalidation was last heard (or the connection last (re)established), and whether it was
   * heard since: only then is that connection trusted.
   */
  private readonly canaries = new Map<Redis, { key: string; heardAt: number; heard: boolean }>();
  /** The master ("host:port") each tracking connection listens to. */
  private readonly nodeOf = new Map<Redis, string>();
  private stopped = false;

  // Plain fields, not parameter properties: Node's type stripping runs this file as is.
  private readonly client: RedisClient;
  private readonly prefixes: readonly string[];
  private readonly onError: (err: Error) => void;

  /** Called with "dead" each time the canary times out and the channel is re-made. */
  private readonly onCanary: (event: "dead") => void;

  constructor(
    client: RedisClient,
    prefix: string | readonly string[],
    onError: (err: Error) => void = () => {},
    options: { canary?: CanaryOptions | false; onCanary?: (event: "dead") => void } = {},
  ) {
    this.client = client;
    this.prefixes = typeof prefix === "string" ? [prefix] : prefix;
    this.onError = onError;
    this.onCanary = options.onCanary ?? (() => {});
    this.canary =
      options.canary === false
        ? null
        : {
            // This process's own keys: another process's canary says nothing about our connections.
            id: randomUUID(),
            everyMs: options.canary?.everyMs ?? 250,
            deadlineMs: options.canary?.deadlineMs ?? 1_000,
          };
  }

  attach(sink: InvalidationSink): void {
    this.sinks.add(sink);
    sink.setEnabled(this.up);
  }

  get isUp(): boolean {
    return this.up;
  }

  async start(): Promise<void> {
    if (this.conns.length > 0) return;
    try {
      await redisReady(this.client);
    } catch (err) {
      // L1 stays off (reads go to Redis/Postgres, never to an incoherent L1) until Redis is there.
      this.onError(err as Error);
      this.client.once("ready", () => void this.start());
      return;
    }
    this.conns = masterNodes(this.client).map((node) => this.track(node));
    await Promise.all(this.conns.map((c) => c.connect().catch((err: Error) => this.onError(err))));
    if (this.canary && !this.stopped) this.canaryTimer = setInterval(() => this.canaryTick(), this.canary.everyMs).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.canaryTimer) clearInterval(this.canaryTimer);
    this.setUp(false);
    await Promise.all(this.conns.map((c) => c.quit().catch(() => c.disconnect())));
  }

  private track(node: Redis): Redis {
    // Our own connection: subscribe mode blocks other commands, and we re-subscribe ourselves.
    // RESP2 on purpose: ioredis (v6, RESP3 by default) drops RESP3 `invalidate` pushes, while
    // in RESP2 Redis delivers them as ordinary pub/sub messages to the redirect target.
    const conn = node.duplicate({
      protocol: 2,
      autoResubscribe: false,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      lazyConnect: true,
    });
    conn.on("ready", () => void this.establish(conn));
    for (const ev of ["close", "end", "reconnecting"]) {
      conn.on(ev, () => {
        this.upConns.delete(conn);
        this.setUp(false);
      });
    }
    conn.on("error", (err: Error) => this.onError(err));
    conn.on("messageBuffer", (channel: Buffer, message: unknown) => {
      if (channel.toString() === CHANNEL) this.onMessage(conn, message);
    });
    this.nodeOf.set(conn, `${node.options.host}:${node.options.port}`);
    return conn;
  }

  private async establish(conn: Redis): Promise<void> {
    try {
      const id = await conn.client("ID");
      await conn.call("CLIENT", "TRACKING", "ON", "REDIRECT", String(id), "BCAST", ...this.prefixes.flatMap((p) => ["PREFIX", p]));
      await conn.subscribe(CHANNEL);
      this.upConns.add(conn);
      if (this.canary) this.canaries.set(conn, { key: this.canaryKey(conn, this.canary.id), heardAt: performance.now(), heard: false });
      this.setUp(this.allUp());
      if (this.canary) this.canaryTick();
    } catch (err) {
      this.onError(err as Error);
      this.upConns.delete(conn);
      this.setUp(false);
      conn.disconnect(true); // reconnect and try again
    }
  }

  /** Every connection tracking, and (with a canary) the canary heard since they were. */
  private allUp(): boolean {
    return (
      this.conns.length > 0 &&
      this.conns.every((c) => this.upConns.has(c) && (this.canary === null || this.canaries.get(c)?.heard === true))
    );
  }

  /**
   * The canary key a connection must hear: under the tracked prefix (so tracking reports it), and on
   * a Cluster hash-tagged into a slot its master owns (each master reports only its own keys), read
   * from the slot map at (re)establishment. `parseKey` matches none of them.
   */
  private canaryKey(conn: Redis, id: string): string {
    const base = `${this.prefixes[0]}canary:`;
    if (!(this.client instanceof Cluster)) return `${base}${id}`;
    const node = this.nodeOf.get(conn);
    const slots = (this.client as Cluster & { slots: string[][] }).slots;
    const slot = slots.findIndex((owners) => owners?.[0] === node);
    return slot < 0 ? `${base}${id}` : `${base}{${tagForSlot(slot)}}:${id}`;
  }

  private canaryTick(): void {
    const c = this.canary;
    if (!c || this.stopped) return;
    const now = performance.now();
    for (const conn of [...this.upConns]) {
      const state = this.canaries.get(conn);
      if (!state) continue;
      if (now - state.heardAt > c.deadlineMs) {
        // Deaf: whatever the socket says, invalidations are not arriving. L1 off, the connection
        // re-made (it counts again only after tracking is re-established and a canary is heard).
        this.onCanary("dead");
        this.onError(new Error(`L1 invalidation canary not heard for ${c.deadlineMs} ms: L1 off, reconnecting`));
        this.canaries.delete(conn);
        this.upConns.delete(conn);
        this.setUp(false);
        conn.disconnect(true);
        continue;
      }
      // Through the shared client (a Cluster routes it to that master); not awaited: a failed write is a canary not heard.
      this.client.set(state.key, String(Date.now()), "PX", Math.max(5_000, c.deadlineMs * 5)).catch(() => {});
    }
  }

  private setUp(up: boolean): void {
    // Flush on every transition to "down", and also when coming back up: entries
    // stored before the gap may have missed messages.
    this.up = up;
    for (const s of this.sinks) s.setEnabled(up);
  }

  private onMessage(conn: Redis, message: unknown): void {
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
      const name = String(raw);
      const canary = this.canaries.get(conn);
      if (canary && name === canary.key) {
        canary.heardAt = performance.now();
        if (!canary.heard) {
          canary.heard = true;
          if (!this.up && this.allUp()) this.setUp(true);
        }
        continue;
      }
      // A lease taken or released changes no value; counting it would make every miss look like
      // a write to the reads in flight for that key (ProtocolCache's join guard).
      if (name.endsWith(":lease")) continue;
      const key = valueKeyOf(name);
      for (const s of this.sinks) s.invalidate(key);
    }
  }
}
