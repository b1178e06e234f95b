export interface LongFunction {
  file: string;
  line: number;
  name: string;
  lines: number;
}
export const MAX_LINES: number;
export function longFunctions(root: string, max?: number): LongFunction[];
