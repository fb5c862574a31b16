import { connect, createServer, type Socket } from "node:net";

/**
 * A TCP proxy of the test's own in front of a real server that can go silent: once `silent` is
 * set, every byte the server sends is swallowed while connections stay open — what a SIGSTOPped or
 * frozen server, or a silently dropped connection, looks like to a client (no FIN, no RST, no
 * answer; the server's own timeouts cannot reach the client).
 */
export interface SilenceableProxy {
  port: number;
  silent: boolean;
  close(): Promise<void>;
}

export async function startSilenceableProxy(target: { host: string; port: number }): Promise<SilenceableProxy> {
  const sockets = new Set<Socket>();
  const state = { silent: false };
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    client.on("data", (b) => upstream.write(b));
    upstream.on("data", (b) => {
      if (!state.silent) client.write(b);
    });
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) s.on("error", () => {}).on("close", closeBoth);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    get silent() {
      return state.silent;
    },
    set silent(v: boolean) {
      state.silent = v;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
