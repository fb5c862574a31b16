/**
 * A local TCP proxy with switchable added latency, for the fault matrix's "slow Redis" and
 * "slow Postgres" rows (README "Faults and bad input"): services are pointed at the proxy, and the
 * fault turns latency on and off while they run. The proxying is the tcp-proxy.js package; we add
 * only the delay: every chunk the upstream sends back is held `latencyMs` before it is forwarded
 * (so each round trip costs that much more; chunks stay in order, like a toxiproxy latency toxic).
 */
import type { AddressInfo } from "node:net";
import TCPProxy from "tcp-proxy.js";

export class LatencyProxy {
  private readonly proxy = new TCPProxy({ host: "127.0.0.1", port: 0 });
  private readonly forwardPort: number;
  private readonly forwardHost: string;
  /** Added to every answer from upstream while > 0. */
  latencyMs = 0;
  port = 0;

  constructor(forwardHost: string, forwardPort: number) {
    this.forwardHost = forwardHost;
    this.forwardPort = forwardPort;
  }

  async start(): Promise<this> {
    const server = await this.proxy.createProxy({
      forwardHost: this.forwardHost,
      forwardPort: this.forwardPort,
      interceptor: {
        server: (chunk) => {
          const ms = this.latencyMs;
          return ms > 0 ? new Promise((resolve) => setTimeout(() => resolve(chunk), ms)) : chunk;
        },
      },
    });
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    await this.proxy.end();
  }
}

/** The same URL with host:port replaced by the proxy's (credentials, database and query kept). */
export function viaProxy(url: string, proxy: LatencyProxy): string {
  const u = new URL(url);
  u.hostname = "127.0.0.1";
  u.port = String(proxy.port);
  return u.toString();
}
