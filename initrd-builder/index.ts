/** Public entry point of the initrd stage. */
export { buildInitrd, type InitrdOptions, type InitrdResult } from './build.js';
export {
  COMPRESSIONS,
  DEFAULT_COMPRESSION,
  KERNEL_DECOMPRESSOR_CONFIG,
  KERNEL_INITRD_CONFIG,
  CODECS,
  kernelConfigFor,
  resolveCompression,
  isCompression,
  type Compression,
} from './codecs.js';
export { checkInit } from './init-check.js';
export { INITRD_OPTIONS, resolveInitrdOptions, type InitrdOptionValues } from './options.js';
export { readNewc, readNewcBuffer, CpioFormatError, type ReadEntry, type ReadOptions } from './reader.js';
export { planEntries, type ArchiveEntry, type WalkOptions } from './walk.js';
export { archiveChunks, type WriteStats } from './writer.js';
export * as newc from './newc.js';
