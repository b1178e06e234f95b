/** Stable error codes: scripts may match on them, so never rename one. */
export type ErrorCode =
  | 'USAGE'
  | 'INPUT_NOT_FOUND'
  | 'INPUT_INVALID'
  | 'OUTPUT_INVALID'
  | 'OUTPUT_EXISTS'
  | 'TOO_LARGE'
  | 'UNSUPPORTED'
  | 'MISSING_INIT'
  | 'MISSING_AGENT'
  | 'AGENT_INVALID'
  | 'CHECKSUM_MISMATCH'
  | 'UNKNOWN_DISTRO'
  | 'UNSUPPORTED_ARCH'
  | 'KERNEL_CONFIG'
  | 'KERNEL_OPTION_DROPPED'
  | 'KERNEL_SYMBOL_UNKNOWN'
  | 'TOOL_MISSING'
  | 'COMMAND_FAILED'
  | 'VERIFY_FAILED'
  | 'VERITY_FAILED'
  | 'DOCKER_UNAVAILABLE'
  | 'BOOT_FAILED'
  | 'BOOT_TIMEOUT'
  | 'COMMAND_TIMEOUT'
  | 'QMP_FAILED'
  | 'AGENT_ERROR'
  | 'CONFIG_INVALID'
  | 'CACHE_CORRUPT'
  | 'NO_SPACE'
  | 'INTERRUPTED'
  | 'PACKAGE_NOT_FOUND'
  | 'DOWNLOAD_FAILED'
  | 'INTERNAL';

export class OsbuilderError extends Error {
  override readonly name = 'OsbuilderError';
  /** Structured facts behind the message, for --json readers (e.g. the failed kernel options). */
  readonly details?: unknown;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint: string,
    options?: { cause?: unknown; details?: unknown },
  ) {
    super(message, options);
    if (options?.details !== undefined) this.details = options.details;
  }

  toJSON(): { code: ErrorCode; message: string; hint: string; details?: unknown } {
    return { code: this.code, message: this.message, hint: this.hint, ...(this.details !== undefined ? { details: this.details } : {}) };
  }
}

const BUG_HINT = 'this is a bug in osbuilder: rerun with --debug and report it';

/** A broken invariant of osbuilder itself, never a fault of the user's input. */
export function internalError(message: string, options?: { cause?: unknown }): OsbuilderError {
  return new OsbuilderError('INTERNAL', message, BUG_HINT, options);
}

/**
 * An error shaped like node:fs's own (`code` = 'ENOENT', …), for code that
 * stands in for node:fs (SafeRoot): its callers branch on the errno code,
 * and asOsbuilderError types it at the CLI like any fs error.
 */
export function errnoError(code: string, message: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

/** Wraps anything thrown into an OsbuilderError so the CLI has one shape to print. */
export function asOsbuilderError(err: unknown): OsbuilderError {
  if (err instanceof OsbuilderError) return err;
  const e = err as NodeJS.ErrnoException | undefined;
  if (e?.code === 'ENOSPC') {
    return new OsbuilderError('NO_SPACE', `no space left on device: ${e.message}`, 'free some space or choose another output location', { cause: err });
  }
  if (e?.code === 'EACCES' || e?.code === 'EPERM') {
    return new OsbuilderError('OUTPUT_INVALID', e.message, 'check the permissions of the paths involved', { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return internalError(message, { cause: err });
}

/**
 * What a command reports once a signal arrived: whatever the interrupted
 * action threw (a killed container's exit 137, a file its cleanup removed)
 * is the interrupt's doing. The action's own INTERRUPTED error is kept.
 */
export function interruptedError(signal: string, cause?: unknown): OsbuilderError {
  if (cause instanceof OsbuilderError && cause.code === 'INTERRUPTED') return cause;
  return new OsbuilderError(
    'INTERRUPTED',
    `interrupted by ${signal}`,
    'what osbuilder had started was cleaned up (temp files, containers, VMs): run the command again',
    cause === undefined ? undefined : { cause },
  );
}
