// npm run check:layers (part of npm test): fails when an import runs against the layering.
// lib/ areas are stacked; a module imports only from its own area or from areas below it, so
// each layer can be read, tested and replaced without the ones above. Task files, scripts and
// the lab tool use tackle through its public API (lib/index.ts), as a user's repository does.
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** lib/ areas from the bottom up; an area may import the areas of lower rank. */
export const LIB_LAYERS: readonly (readonly string[])[] = [
  ['errors.ts', 'concurrency.ts', 'lazy.ts'],
  ['command'],
  ['env.ts', 'inventory'],
  ['connection'],
  ['facts'],
  ['ops'],
  ['engine'],
  ['metrics'],
  ['backup', 'health'],
  ['cli'],
  ['index.ts'],
];

/** Top-level folders outside lib/ and what they may import besides their own files. */
const OUTSIDE: Readonly<Record<string, readonly string[]>> = {
  tasks: ['lib/index.ts'],
  'inventory.ts': ['lib/index.ts'],
  lab: ['lib/index.ts'],
  // The bench measures a real task on a lab; the lab script drives the lab tool.
  scripts: ['lib/index.ts', 'lab', 'tasks'],
  bin: ['lib/index.ts'],
  // Tests may reach into any layer: that is how a layer is tested on its own.
  test: ['lib', 'lab', 'tasks', 'scripts', 'bin'],
};

export interface Import {
  from: string;
  to: string;
}

/** The area of a repository path: `lib/<area>` for lib, else its top-level folder or file. */
function area(path: string): string {
  const parts = path.split('/');
  if (parts[0] === 'lib') return parts.length > 2 ? `lib/${parts[1]}` : path;
  return parts[0] ?? path;
}

function rank(libArea: string): number {
  const name = libArea.slice('lib/'.length);
  return LIB_LAYERS.findIndex((layer) => layer.includes(name));
}

/** Pure: the imports that break the layering, each with the reason. */
export function violations(imports: readonly Import[]): string[] {
  const found: string[] = [];
  for (const { from, to } of imports) {
    const a = area(from);
    const b = area(to);
    if (a === b) continue;
    if (a.startsWith('lib/')) {
      const ra = rank(a);
      const rb = b.startsWith('lib/') ? rank(b) : -1;
      if (ra < 0) found.push(`${from}: lib area ${a} is not in LIB_LAYERS (scripts/check-layers.ts)`);
      else if (rb < 0) found.push(`${from} imports ${to}: lib/ imports nothing outside lib/`);
      else if (rb >= ra) found.push(`${from} imports ${to}: ${a} may not import ${b}, which is ${rb === ra ? 'beside' : 'above'} it`);
      continue;
    }
    const allowed = OUTSIDE[a];
    if (!allowed) {
      found.push(`${from}: ${a} is not a known place (scripts/check-layers.ts)`);
      continue;
    }
    if (!allowed.some((p) => to === p || to.startsWith(`${p}/`))) found.push(`${from} imports ${to}: ${a} may import only ${allowed.join(', ')}`);
  }
  return found;
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

/** The relative imports of one source text, as repository paths. */
export function importsOf(file: string, source: string): Import[] {
  return [...source.matchAll(SPECIFIER)].map((m) => ({ from: file, to: normalize(join(dirname(file), m[1] as string)) }));
}

async function sources(root: string, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, dir), { withFileTypes: true })) {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (!['node_modules', 'docs', '.git', 'fixtures'].includes(entry.name) && !entry.name.startsWith('.')) out.push(...(await sources(root, path)));
    } else if (/\.(m?ts|m?js)$/.test(entry.name) && (dir !== '' || entry.name === 'inventory.ts')) {
      out.push(path);
    }
  }
  return out;
}

async function main(): Promise<number> {
  const root = resolve(import.meta.dirname, '..');
  const files = (await sources(root, '')).filter((f) => Object.hasOwn(OUTSIDE, area(f)) || f.startsWith('lib/'));
  const imports = (await Promise.all(files.map(async (f) => importsOf(f, await readFile(join(root, f), 'utf8'))))).flat();
  const found = violations(imports);
  for (const line of found) console.error(`error: ${line}`);
  if (found.length === 0) console.log(`layers: ${imports.length} imports in ${files.length} files, all point down (${relative(process.cwd(), root) || '.'})`);
  return found.length === 0 ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) process.exitCode = await main();
