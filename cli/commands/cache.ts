import type { CommandModule } from 'yargs';
import { BuildCache } from '../../core/cache.js';
import { runCommand, table, type GlobalArgs } from '../output.js';
import { mib } from '../../core/vocab.js';
import { OsbuilderError } from '../../core/errors.js';

interface CacheArgs extends GlobalArgs {
  action: 'ls' | 'prune';
  keep: number;
}

/** What `osbuilder cache ls` reports (its --json output). */
async function listing(cache: BuildCache) {
  return {
    root: cache.root,
    entries: (await cache.list()).map((e) => ({
      stage: e.stage,
      key: e.key,
      bytes: e.bytes,
      usedAt: e.usedAt.toISOString(),
      createdAt: e.createdAt,
      files: Object.keys(e.files),
    })),
    stores: (await cache.stores()).map((s) => ({ top: s.top, key: s.name, info: s.info, files: s.files, bytes: s.bytes, usedAt: s.usedAt.toISOString() })),
    leftovers: await cache.leftovers(),
  };
}

export type CacheListing = Awaited<ReturnType<typeof listing>>;

export const cacheCommand: CommandModule<GlobalArgs, CacheArgs> = {
  command: 'cache <action>',
  describe: 'List or prune the build cache ($XDG_CACHE_HOME/osbuilder, or $OSBUILDER_CACHE_DIR)',
  builder: (y) =>
    y
      .positional('action', {
        choices: ['ls', 'prune'] as const,
        demandOption: true,
        describe: 'ls: list entries and package caches; prune: keep the newest --keep per stage (and package caches)',
      })
      .option('keep', {
        type: 'number',
        default: 2,
        describe: 'With prune: entries kept per stage, and package caches kept (most recently used first)',
      }) as never,
  handler: (argv) =>
    runCommand(
      argv,
      async () => {
        const cache = new BuildCache();
        if (argv.action === 'prune') {
          if (!Number.isInteger(argv.keep) || argv.keep < 0) {
            throw new OsbuilderError('USAGE', `--keep must be a whole number ≥ 0, got ${argv.keep}`, 'e.g. osbuilder cache prune --keep 2');
          }
          return { root: cache.root, ...(await cache.prune(argv.keep)) };
        }
        return listing(cache);
      },
      (r) => {
        if ('removed' in r) {
          const busy = r.inUse.length ? ` (${r.inUse.length} in use by running builds)` : '';
          return `pruned ${r.removed.length} path${r.removed.length === 1 ? '' : 's'} from ${r.root}, kept ${r.kept} entr${r.kept === 1 ? 'y' : 'ies'}${busy}`;
        }
        if (r.entries.length === 0 && r.stores.length === 0 && r.leftovers.length === 0) return `cache ${r.root} is empty`;
        const out = [
          `cache ${r.root}`,
          r.entries.length
            ? table(
                ['stage', 'key', 'size', 'last used', 'files'],
                r.entries.map((e) => [e.stage, e.key.slice(0, 16), mib(e.bytes), e.usedAt, e.files.join(' ')]),
              )
            : 'no entries',
        ];
        if (r.stores.length) {
          out.push('', 'package caches (downloaded .debs reused by rootfs builds; prune keeps the newest --keep):');
          out.push(
            table(
              ['dir', 'source', 'files', 'size', 'last used'],
              r.stores.map((s) => [
                `${s.top}/${s.key.slice(0, 16)}`,
                Object.entries(s.info)
                  .filter(([k]) => k !== 'kind')
                  .map(([, v]) => v)
                  .join(' '),
                String(s.files),
                mib(s.bytes),
                s.usedAt,
              ]),
            ),
          );
        }
        if (r.leftovers.length) {
          out.push('', "temp paths, locks and holds (a dead owner's are removed by the next build or cache prune):");
          out.push(
            table(
              ['path', 'owner', 'state', 'size'],
              r.leftovers.map((l) => [l.path, l.owner, l.alive ? 'running' : 'dead', mib(l.bytes)]),
            ),
          );
        }
        return out.join('\n');
      },
    ),
};
