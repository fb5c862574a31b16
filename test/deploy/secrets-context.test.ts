import { describe, expect, it } from "vitest";
import { dockerIgnored, ROOT, run } from "./tools.ts";

// The README's Docker instructions write the admin token into `.env` (compose reads it). That file
// must never reach the image (the Dockerfile's `COPY . .`: anyone who pulls the image would read
// the token in /app/.env) nor git.

describe("secrets kept out of the build context and of git", () => {
  it(".dockerignore keeps .env files out of the image (root and any depth)", () => {
    const ignored = dockerIgnored();
    for (const rel of [".env", "services/catalog/.env", "deploy/k8s/overlays/production/.env"]) expect(ignored(rel), rel).toBe(true);
    // and still sends the sources
    expect(ignored("services/catalog/src/main.ts")).toBe(false);
  });

  it(".gitignore keeps .env out of commits", () => {
    for (const rel of [".env", "services/catalog/.env"]) expect(run("git", ["check-ignore", "-q", rel], { cwd: ROOT }).status, rel).toBe(0);
  });
});
