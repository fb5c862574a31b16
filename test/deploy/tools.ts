import { execFileSync, spawnSync } from "node:child_process";

export const ROOT = new URL("../../", import.meta.url).pathname;

/** Path of a tool scripts/go-tool builds once into .state/bin. */
export function goTool(name: "compose" | "dockerfile-lint" | "kustomize" | "k8s-validate" | "strimzi-validate"): string {
  return execFileSync(`${ROOT}scripts/go-tool`, [name], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 900_000,
  }).trim();
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (bounded), never throwing on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {}): Run {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? process.env,
    input: opts.input,
    encoding: "utf8",
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
