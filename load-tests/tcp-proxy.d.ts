// Types for the tcp-proxy.js package (it ships none): the part load-tests/latency-proxy.ts uses.
declare module "tcp-proxy.js" {
  import type { EventEmitter } from "node:events";
  import type { Server } from "node:net";

  type Interceptor = (chunk: Buffer, encoding: string, context: unknown) => Buffer | Promise<Buffer> | undefined;
  export default class TCPProxy extends EventEmitter {
    constructor(options?: { host?: string; port?: number });
    createProxy(options: {
      forwardPort: number;
      forwardHost?: string;
      interceptor?: { client?: Interceptor; server?: Interceptor };
    }): Promise<Server>;
    end(): Promise<void>;
  }
}
