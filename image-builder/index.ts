/** Public entry point of the image stage: `buildImage(options) => Promise<ImageResult>`. */
export { buildImage, type ImageResult } from './build.js';
export {
  IMAGE_OPTIONS,
  PARTITION_TABLES,
  imageOptionsFromCli,
  resolveImageOptions,
  type BuildImageOptions,
  type ImageCliArgs,
  type ImageOptionValues,
  type ResolvedImageOptions,
} from './options.js';
export type { PlannedPartition, PartitionTable } from './layout.js';
export { AGENT_PATH, INIT_PATHS } from './rootfs-check.js';
