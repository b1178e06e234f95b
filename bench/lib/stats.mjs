// Timing helpers shared by the bench scripts.

/** Milliseconds `fn` took. */
export async function timed(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** The median (the mean of the middle two for an even count). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
