import calculateSlot from "cluster-key-slot";

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

/**
 * Per-slot bookkeeping keys, never given a TTL so that `volatile-*` memory pressure cannot evict
 * them (docs/architecture.md#keys): `incarnation` marks the life of the Redis holding the slot (a
 * restart or failover without the key loses it, so a fill whose lease was granted before is refused)
 * and `fences` is the sorted set of fence expiries the sweeper collects fences by. Their hash tag is
 * chosen to land in the same Cluster slot as the entity's own keys, so the Lua scripts stay single-slot.
 */
export interface SlotKeys {
  incarnation: string;
  fences: string;
}

const SLOTS = 16_384;
let slotTags: string[] | null = null;

/** The shortest base-36 tag hashing to each slot (built once, about 10^5 CRC16s of tiny strings). */
export function tagForSlot(slot: number): string {
  if (!slotTags) {
    const tags = new Array<string>(SLOTS);
    let found = 0;
    for (let i = 0; found < SLOTS; i++) {
      const s = i.toString(36);
      const at = calculateSlot(s);
      if (tags[at] === undefined) {
        tags[at] = s;
        found++;
      }
    }
    slotTags = tags;
  }
  return slotTags[slot] as string;
}

/** The bookkeeping keys of the slot a value key lives in. */
export function slotKeys(valueKey: string): SlotKeys {
  const tag = tagForSlot(calculateSlot(valueKey));
  return { incarnation: `${ROOT}incarnation:{${tag}}`, fences: `${ROOT}fences:{${tag}}` };
}

/** SCAN MATCH pattern of every slot's fence index (the sweeper's work list). */
export const FENCE_INDEX_PATTERN = `${ROOT}fences:{*}`;

/**
 * Demand bookkeeping of an entity, shared by every catalog (docs/architecture.md#warm-up): `demand`
 * is a sorted set of decayed read counts by id (what to warm first after a cold start; not versioned:
 * demand outlives a schema-version bump), `decay` the lock of its periodic halving, and `warmed` a
 * marker per schema version whose absence means that version's keys are cold (Redis flushed or
 * restarted, or the version new). None is under a tracked prefix.
 */
export function demandKeys(entity: string, schemaVersion: number): { demand: string; decay: string; warmed: string } {
  return {
    demand: `${ROOT}demand:{${entity}}`,
    decay: `${ROOT}demand:{${entity}}:decay`,
    warmed: `${ROOT}warmed:v${schemaVersion}:{${entity}}`,
  };
}
