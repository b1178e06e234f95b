import { expect } from 'vitest';
import { OsbuilderError } from '../../core/errors.js';

/** The OsbuilderError `p` rejects with (the test fails if it resolves or throws anything else). */
export async function failure(p: Promise<unknown>): Promise<OsbuilderError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OsbuilderError);
  return err as OsbuilderError;
}

/** The code of the OsbuilderError `fn` throws (another error's text; undefined when it returns). */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof OsbuilderError ? err.code : String(err);
  }
  return undefined;
}

/** The OsbuilderError `fn` throws (the test fails if it returns or throws anything else). */
export function thrown(fn: () => unknown): OsbuilderError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(OsbuilderError);
  return err as OsbuilderError;
}
