/**
 * Key layout, owned here and nowhere else (docs/architecture.md#keys):
 * `catalog:v<schema>:{<entity>:<id>}` plus `:lease` and `:fence` siblings. The braces are a
 * Redis Cluster hash tag, so a value and its lease and fence always live in one slot and every
 * Lua script stays single-slot. Bumping the schema version retires every old entry at once.
 *
 * Every helper takes the schema version as an argument, so several versions can be live side by
 * side (a rolling deploy): their prefixes never overlap (`catalog:v1:` is not a prefix of
 * `catalog:v10:`), which Redis requires of the prefixes of one CLIENT TRACKING BCAST call.
 */
const ROOT = "catalog:";

export interface EntityKeys {
  value: string;
  lease: string;
  fence: string;
}

export type KeyPart = keyof EntityKeys;

export interface ParsedKey {
  schemaVersion: number;
  entity: string;
  id: string;
  part: KeyPart;
}

/** Everything one schema version stores starts with this (the L1 tracking prefix). */
export function keyPrefix(schemaVersion: number): string {
  return `${ROOT}v${schemaVersion}:`;
}

export function entityKeys(schemaVersion: number, entity: string, id: string | number): EntityKeys {
  const value = `${keyPrefix(schemaVersion)}{${entity}:${id}}`;
  return { value, lease: `${value}:lease`, fence: `${value}:fence` };
}

/** SCAN MATCH pattern for an entity's value keys (not their siblings) of one schema version, or of every version. */
export function scanPattern(entity: string, schemaVersion?: number): string {
  return `${ROOT}v${schemaVersion ?? "*"}:{${entity}:*}`;
}

const KEY = /^catalog:v(\d+):\{([^:{}]+):([^{}]+)\}(?::(lease|fence))?$/;

/** The parts of one of our keys; null for any other key. */
export function parseKey(key: string): ParsedKey | null {
  const m = KEY.exec(key);
  if (!m) return null;
  return { schemaVersion: Number(m[1]), entity: m[2] as string, id: m[3] as string, part: (m[4] as KeyPart | undefined) ?? "value" };
}

const SIBLING_SUFFIX = /:(lease|fence)$/;

/** The value key a key belongs to (itself for a value key): what an L1 invalidation evicts. */
export function valueKeyOf(key: string): string {
  return key.replace(SIBLING_SUFFIX, "");
}
