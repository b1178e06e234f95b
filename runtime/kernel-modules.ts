/**
 * Kata's agent.kata.kernel_modules: each entry is "name param=value …",
 * split on whitespace as kata-runtime's setupKernelModules does (blank
 * entries dropped); CreateSandbox carries them as KernelModule messages and
 * the agent runs `modprobe name params…`. Stricter than Kata: a name or
 * parameter that modprobe would read as an option is refused.
 */
import { OsbuilderError } from '../core/errors.js';

export interface KernelModuleSpec {
  name: string;
  parameters: string[];
}

const MODULE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;

export function parseKernelModule(entry: string, key: string): KernelModuleSpec | null {
  const fields = entry.trim().split(/\s+/).filter(Boolean);
  if (fields.length === 0) return null;
  const [name, ...parameters] = fields as [string, ...string[]];
  if (!MODULE_NAME.test(name))
    throw new OsbuilderError(
      'CONFIG_INVALID',
      `${key}: ${JSON.stringify(name)} is not a module name`,
      'give "name param=value …", e.g. "e1000e InterruptThrottleRate=3000"',
    );
  const bad = parameters.find((p) => p.startsWith('-'));
  if (bad)
    throw new OsbuilderError(
      'CONFIG_INVALID',
      `${key}: parameter ${JSON.stringify(bad)} of ${name} would be a modprobe option`,
      'module parameters are name=value',
    );
  return { name, parameters };
}

/** Every entry of a kernel_modules list, in order. */
export function parseKernelModules(entries: readonly string[], key: string): KernelModuleSpec[] {
  return entries.map((e) => parseKernelModule(e, key)).filter((m): m is KernelModuleSpec => m !== null);
}
