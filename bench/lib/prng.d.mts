/** A deterministic PRNG (mulberry32): numbers in [0, 1) from `seed`. */
export function prng(seed: number): () => number;
