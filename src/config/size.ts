/**
 * Byte sizes and durations as the config writes them. Sizes follow Rust's `bytesize`, as
 * cachegate does: a plain integer is bytes; k/kb/m/mb/g/gb/t/tb are powers of 1000 and
 * ki/kib/mi/mib/gi/gib/ti/tib powers of 1024, case-insensitive, with an optional space and a
 * decimal fraction (`1.5 GiB`).
 */

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1e3, kb: 1e3,
  m: 1e6, mb: 1e6,
  g: 1e9, gb: 1e9,
  t: 1e12, tb: 1e12,
  p: 1e15, pb: 1e15,
  ki: 2 ** 10, kib: 2 ** 10,
  mi: 2 ** 20, mib: 2 ** 20,
  gi: 2 ** 30, gib: 2 ** 30,
  ti: 2 ** 40, tib: 2 ** 40,
  pi: 2 ** 50, pib: 2 ** 50,
};

const SIZE_RE = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i;

/** Parse a size into a whole number of bytes; throws a one-line Error on bad input. */
export function parseSize(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`invalid size ${value}: expected a whole number of bytes`);
    return value;
  }
  const m = SIZE_RE.exec(value);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new Error(`invalid size '${value}': expected e.g. 1048576, 512MiB, 1GB`);
  }
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new Error(`invalid size '${value}': too large`);
  return bytes;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000, sec: 1000, secs: 1000,
  m: 60_000, min: 60_000, mins: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i;

/**
 * Parse a duration into milliseconds. A plain number means seconds (as humantime-style configs
 * and cachegate's `*_secs` fields do); strings take ms, s, m, h or d (`500ms`, `30s`, `1h`).
 */
export function parseDurationMs(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new Error(`invalid duration ${value}`);
    return Math.round(value * 1000);
  }
  const m = DURATION_RE.exec(value);
  if (!m) throw new Error(`invalid duration '${value}': expected e.g. 30s, 500ms, 2m`);
  const unit = m[2] === '' ? 1000 : DURATION_UNITS_MS[m[2]!.toLowerCase()];
  if (unit === undefined) throw new Error(`invalid duration '${value}': unknown unit '${m[2]}'`);
  return Math.round(Number(m[1]) * unit);
}
