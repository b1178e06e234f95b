import { OsbuilderError } from './errors.js';

/** SOURCE_DATE_EPOCH as seconds, or undefined when unset. */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) {
    throw new OsbuilderError(
      'INPUT_INVALID',
      `SOURCE_DATE_EPOCH=${raw} is not a number of seconds`,
      'set it to a Unix timestamp, e.g. $(git log -1 --format=%ct)',
    );
  }
  return Number(raw);
}
