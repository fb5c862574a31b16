// Run in the Dockerfile's prod stage after `pnpm install --prod`: removes packages that only an
// optional peer dependency brought in. @prisma/client names the Prisma CLI and TypeScript as optional
// peers; the lockfile resolves them (they are dev dependencies of packages/db), so --prod installs
// them, with everything they need (Prisma Studio, React, PGlite…): ~200 MB the runtime never loads
// (it uses @prisma/client/runtime and the generated client only).
//   node deploy/image/prune-peers.mjs <package name>...     (e.g. prisma typescript)
// Walks the pnpm layout from every workspace package's node_modules, not following the named
// packages, and deletes each node_modules/.pnpm entry it never reached. test/deploy/image.test.ts
// runs the same and then starts every service from the pruned tree.
import { existsSync, lstatSync, readdirSync, realpathSync, rmSync } from "node:fs";
import { join, sep } from "node:path";

const skip = new Set(process.argv.slice(2));
if (skip.size === 0) {
  console.error("usage: node deploy/image/prune-peers.mjs <package name>...");
  process.exit(2);
}
const root = process.cwd();
const store = join(root, "node_modules", ".pnpm");

/** Package directories linked from a node_modules directory (scoped ones included), by name. */
function linked(nodeModules) {
  if (!existsSync(nodeModules)) return [];
  const out = [];
  for (const e of readdirSync(nodeModules)) {
    if (e === ".pnpm" || e === ".bin" || e.startsWith(".")) continue;
    if (e.startsWith("@")) {
      for (const s of readdirSync(join(nodeModules, e))) out.push([`${e}/${s}`, join(nodeModules, e, s)]);
    } else out.push([e, join(nodeModules, e)]);
  }
  return out;
}

/** The .pnpm entry ("<name>@<version>…") a resolved package directory lives in, if any. */
function storeEntry(dir) {
  if (!dir.startsWith(store + sep)) return null;
  return dir.slice(store.length + 1).split(sep)[0];
}

const importers = [
  root,
  ...["packages", "services"].flatMap((d) => (existsSync(join(root, d)) ? readdirSync(join(root, d)).map((p) => join(root, d, p)) : [])),
];
const reached = new Set();
const queue = [];
for (const imp of importers) for (const [name, link] of linked(join(imp, "node_modules"))) if (!skip.has(name)) queue.push(link);
while (queue.length > 0) {
  const link = queue.pop();
  let dir;
  try {
    dir = realpathSync(link);
  } catch {
    continue; // a dangling link
  }
  const entry = storeEntry(dir);
  if (entry === null || reached.has(entry)) continue;
  reached.add(entry);
  // A package's dependencies are its siblings in <entry>/node_modules.
  for (const [name, sibling] of linked(join(store, entry, "node_modules"))) if (!skip.has(name)) queue.push(sibling);
}

let removed = 0;
for (const entry of readdirSync(store)) {
  const p = join(store, entry);
  if (reached.has(entry) || !lstatSync(p).isDirectory() || entry === "node_modules") continue;
  rmSync(p, { recursive: true, force: true });
  removed++;
}
console.log(`prune-peers: kept ${reached.size} packages, removed ${removed} reached only through ${[...skip].join(", ")}`);
