/**
 * Key layout (design.md §4): `catalog:v<schema>:{<entity>:<id>}` plus `:lease` and
 * `:fence` siblings. The braces are a Redis Cluster hash tag, so a value and its
 * lease and fence always live in one slot and every Lua script stays single-slot.
 * Bumping the schema version retires every old entry at once.
 */
export const KEY_PREFIX = "catalog:";

export interface EntityKeys {
  value: string;
  lease: string;
  fence: string;
}

export function entityKeys(schemaVersion: number, entity: string, id: string | number): EntityKeys {
  const value = `${KEY_PREFIX}v${schemaVersion}:{${entity}:${id}}`;
  return { value, lease: `${value}:lease`, fence: `${value}:fence` };
}
