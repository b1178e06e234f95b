import { OsbuilderError } from '../core/errors.js';
import { withSafeRoot } from '../core/fs-safe.js';

const HINT =
  "an initrd boots /init: build the rootfs with the agent as init (osbuilder rootfs … --agent-init, Kata's AGENT_INIT=yes), " +
  'which makes /init a link to /usr/bin/kata-agent — or put an executable /init in the rootfs';

/**
 * The kernel runs /init from an initramfs (rdinit=, default /init). It must be
 * an executable file, or a symlink that resolves to one inside the rootfs
 * (absolute targets are relative to the rootfs's root, as in the guest).
 * Returns the in-root path it resolves to.
 */
export async function checkInit(rootfs: string): Promise<string> {
  return withSafeRoot(rootfs, async (fs) => {
    const own = await fs.lstat('/init');
    if (!own) throw new OsbuilderError('MISSING_INIT', `rootfs ${rootfs} has no /init`, HINT);
    const st = await fs.stat('/init');
    if (!st) throw new OsbuilderError('MISSING_INIT', `/init in ${rootfs} is a symlink that does not resolve inside the rootfs`, HINT);
    const real = await fs.realpath('/init');
    if (!st.isFile()) throw new OsbuilderError('MISSING_INIT', `/init in ${rootfs} resolves to ${real}, which is not a regular file`, HINT);
    if ((st.mode & 0o111) === 0) throw new OsbuilderError('MISSING_INIT', `/init in ${rootfs} (${real}) is not executable`, HINT);
    return real;
  });
}
