// Copies non-TypeScript assets (templates, fragments, agent sources) next to the compiled code.
import { cp, readdir, stat } from 'node:fs/promises';
import { join, extname } from 'node:path';

const roots = ['distros', 'kernel', 'rootfs-builder', 'runtime', 'agent', 'image-builder', 'initrd-builder'];
const skip = new Set(['.ts']);

async function walk(dir) {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p);
    else if (!skip.has(extname(e.name))) await cp(p, join('dist', p), { preserveTimestamps: true });
  }
}

for (const r of roots) {
  if ((await stat(r).catch(() => null))?.isDirectory()) await walk(r);
}
