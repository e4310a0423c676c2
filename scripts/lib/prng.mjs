// mulberry32: a small seeded PRNG, so generated test fixtures and benchmark inputs are the same on
// every run. One copy for the TypeScript tests (core's bucket properties, engine's image fixtures)
// and the plain-Node bench scripts; dependency-free so core's tests can import it.
/** @param {number} seed @returns {() => number} uniform in [0, 1) */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
