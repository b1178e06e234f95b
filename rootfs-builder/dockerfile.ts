/** Renders a distro's Dockerfile.hbs and reads a Dockerfile back (for syntax checks). */
import { readFileSync } from 'node:fs';
import Handlebars from 'handlebars';
import type { Arch } from '../core/arch.js';
import type { DistroDefinition } from '../distros/index.js';

export function renderDockerfile(distro: DistroDefinition, version: string, arch: Arch, baseImage: string, template?: string): string {
  const src = template ?? readFileSync(distro.dockerfileTemplate, 'utf8');
  const render = Handlebars.compile(src, { noEscape: true, strict: true });
  return render({
    name: distro.name,
    displayName: distro.displayName,
    version,
    arch,
    baseImage,
    builderPackages: distro.builderPackages,
    ...(distro.dockerfileVars?.(version, arch) ?? {}),
  });
}

export interface DockerInstruction {
  line: number;
  keyword: string;
  args: string;
}

/**
 * Splits a Dockerfile into instructions: comments dropped, backslash line
 * continuations joined (the default escape character).
 */
export function dockerInstructions(text: string): DockerInstruction[] {
  const out: DockerInstruction[] = [];
  const lines = text.split('\n');
  let current: { line: number; text: string } | undefined;
  lines.forEach((raw, i) => {
    if (current === undefined && /^\s*(#|$)/.test(raw)) return;
    if (current !== undefined && /^\s*#/.test(raw)) return; // comment lines inside a continuation
    const continued = /\\\s*$/.test(raw);
    const body = continued ? raw.replace(/\\\s*$/, '') : raw;
    if (current === undefined) current = { line: i + 1, text: body };
    else current.text += body; // the parser drops backslash-newline and joins the lines
    if (!continued) {
      const m = /^\s*(\S+)\s*([\s\S]*)$/.exec(current.text);
      if (m) out.push({ line: current.line, keyword: m[1]!.toUpperCase(), args: m[2]!.trim() });
      current = undefined;
    }
  });
  if (current !== undefined) {
    const m = /^\s*(\S+)\s*([\s\S]*)$/.exec(current.text);
    if (m) out.push({ line: current.line, keyword: m[1]!.toUpperCase(), args: m[2]!.trim() });
  }
  return out;
}

/** Shell-form RUN bodies (what /bin/sh -c runs in the builder). */
export function shellRunBodies(text: string): { line: number; script: string }[] {
  return dockerInstructions(text)
    .filter((i) => i.keyword === 'RUN' && !i.args.startsWith('['))
    .map((i) => ({ line: i.line, script: i.args }));
}
