// Types for load-tests/scenarios.js (plain JS so that k6 can load it too).
export type Op =
  | { http: { method: string; url: string; body: string | null; headers: Record<string, string>; name: string } }
  | { sleep: number }
  | { metric: string; value: number; tags?: Record<string, string> }
  | { check: string; ok: boolean };
export interface HttpResult {
  status: number;
  body: string;
}
export interface FlowContext {
  env: Record<string, string | undefined>;
  urls: { catalog: string; checkout: string; adminToken: string };
  data: SetupData | null;
  vu: number;
  iter: number;
}
export interface SetupData {
  marks: { label: string; at: number }[];
  [key: string]: unknown;
}
export type Flow = (ctx: FlowContext) => Generator<Op, unknown, HttpResult | undefined>;
export type Executor =
  | {
      executor: "constant-arrival-rate";
      exec: string;
      rate: number;
      timeUnit: string;
      duration: string;
      preAllocatedVUs: number;
      maxVUs: number;
    }
  | {
      executor: "ramping-arrival-rate";
      exec: string;
      startRate: number;
      timeUnit: string;
      preAllocatedVUs: number;
      maxVUs: number;
      stages: { duration: string; target: number }[];
    }
  | { executor: "constant-vus"; exec: string; vus: number; duration: string }
  | { executor: "shared-iterations"; exec: string; vus: number; iterations: number; maxDuration: string };
export interface Scenario {
  name: string;
  executors: Record<string, Executor>;
  thresholds: Record<string, string[]>;
  flows: Record<string, Flow>;
  urls: FlowContext["urls"];
}
export const METRICS: Record<string, "counter" | "trend">;
export const SCENARIO_NAMES: string[];
export function scenario(name: string, env: Record<string, string | undefined>): Scenario;
