/**
 * Layered config: several files (and the environment) merged in order, maps deep and lists
 * replaced, remembering which layer set each path so an error can name the file it came from.
 */

/** Where each dotted path was last set: `stores.media.bucket` → `secrets.yaml`. */
export type Origins = Map<string, string>;

export interface MergedLayers {
  data: Record<string, unknown>;
  origins: Origins;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Merge `layers` in order: a later map merges into an earlier one key by key, anything else (a
 * list, a scalar, null) replaces what was there. `name` is what errors call the layer.
 */
export function mergeLayers(layers: readonly { name: string; data: unknown }[]): MergedLayers {
  const origins: Origins = new Map();
  let data: Record<string, unknown> = {};
  for (const layer of layers) {
    if (!isMap(layer.data)) continue;
    data = mergeInto(data, layer.data, [], layer.name, origins);
  }
  return { data, origins };
}

function mergeInto(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
  at: string[],
  name: string,
  origins: Origins,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const path = [...at, key];
    const prev = out[key];
    if (isMap(prev) && isMap(value)) {
      origins.set(path.join('.'), origins.get(path.join('.')) ?? name);
      out[key] = mergeInto(prev, value, path, name, origins);
    } else {
      // A replaced subtree forgets where its old leaves came from.
      for (const k of [...origins.keys()]) if (k.startsWith(`${path.join('.')}.`)) origins.delete(k);
      out[key] = value;
      recordOrigins(value, path, name, origins);
    }
  }
  return out;
}

function recordOrigins(value: unknown, path: string[], name: string, origins: Origins): void {
  origins.set(path.join('.'), name);
  if (isMap(value) || Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) recordOrigins(v, [...path, k], name, origins);
  }
}

/** The layer that set `path` or, for a missing key, its nearest parent that some layer set. */
export function originOf(origins: Origins, path: readonly (string | number | symbol)[]): string | undefined {
  for (let n = path.length; n > 0; n--) {
    const found = origins.get(path.slice(0, n).map(String).join('.'));
    if (found !== undefined) return found;
  }
  return undefined;
}
