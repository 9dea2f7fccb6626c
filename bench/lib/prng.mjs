/**
 * A deterministic PRNG (mulberry32), so the bench's seeks and the tests' random ranges can be
 * replayed from their seed. One copy for both (`test/integration/large-objects.test.ts`).
 */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
