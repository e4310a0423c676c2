/** mulberry32: a seeded PRNG, uniform in [0, 1) (scripts/lib/prng.mjs). */
export declare function prng(seed: number): () => number;
