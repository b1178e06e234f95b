/** Public entry of the pipeline (`osbuilder build`, `matrix`): what cli/ may use. */
export { build, type BuildResult } from './build.js';
export { verifyReproducible, type ReproducibleResult } from './reproducible.js';
export { BUILD_INITRD_DEFAULTS, type BuildOptions } from './plan.js';
export { matrixFilter, matrixRows, renderMatrix, type MatrixFormat } from './matrix.js';
