// The layers of the package and the one direction their imports may point, checked on the
// real import graph (tools/import-graph.ts). No exceptions list: a file that needs something
// from a higher layer belongs in that layer.
import { describe, expect, it } from 'vitest';
import { importCycles, importGraph } from '../tools/import-graph.js';

const root = new URL('..', import.meta.url).pathname;

/**
 * Each folder's rank, low to high. A file may import its own folder and any folder of a
 * lower rank; folders of equal rank (worker, engine) are peers and may not import each
 * other. contract/ is the generated data the core is made of (error catalogue, library
 * bundle): it imports nothing.
 */
const RANKS: Readonly<Record<string, number>> = {
  contract: 0,
  runtime: 1,
  generated: 2,
  operations: 3,
  worker: 4,
  engine: 4,
  'index.ts': 5,
  'transport.ts': 5,
  cli: 6,
};

/** Tools around the package, not part of it: they may import anything, nothing imports them. */
const OUTSIDE = new Set(['bench', 'demo', 'examples', 'test', 'tools', 'vitest.config.ts']);

/**
 * The generator reads spec/ and lua/ and writes files: it imports nothing of the package,
 * and only the CLI (its `codegen` and `check` commands) imports it.
 */
const GENERATOR = 'generator';

const folderOf = (file: string) => file.split('/')[0]!;

function violation(from: string, to: string): string | undefined {
  const source = folderOf(from);
  const target = folderOf(to);
  if (source === target || OUTSIDE.has(source)) return undefined;
  if (source === GENERATOR) return `the generator imports nothing of the package (${target}/)`;
  if (target === GENERATOR) return source === 'cli' ? undefined : `only cli/ may import the generator`;
  if (OUTSIDE.has(target)) return `${target}/ is outside the package`;
  const sourceRank = RANKS[source];
  const targetRank = RANKS[target];
  if (sourceRank === undefined) return `${source} has no layer: add it to RANKS or OUTSIDE in test/layers.test.ts`;
  if (targetRank === undefined) return `${target} has no layer: add it to RANKS or OUTSIDE in test/layers.test.ts`;
  if (targetRank > sourceRank) return `${source} (layer ${sourceRank}) imports the higher layer ${target} (${targetRank})`;
  if (targetRank === sourceRank) return `${source} and ${target} are peers and must not import each other`;
  return undefined;
}

describe('layers', () => {
  const graph = importGraph(root);

  it('reads the whole tree', () => {
    expect(graph.get('runtime/client.ts')).toContain('runtime/transport.ts');
    expect(graph.get('index.ts')?.length).toBeGreaterThan(5);
  });

  it('point one way: no file imports a higher layer, a peer or a tool', () => {
    const wrong = [...graph].flatMap(([from, targets]) =>
      targets.flatMap((to) => {
        const reason = violation(from, to);
        return reason ? [`${from} -> ${to}: ${reason}`] : [];
      }),
    );
    expect(wrong, 'move the importing code up a layer, or the imported code down').toEqual([]);
  });

  it('have no import cycle', () => {
    expect(importCycles(graph), 'files that import each other, directly or through others').toEqual([]);
  });

  it('the check itself catches an arrow downwards and a cycle', () => {
    expect(violation('runtime/errors.ts', 'generated/errors.ts')).toMatch(/higher layer/);
    expect(violation('engine/run.ts', 'worker/loop.ts')).toMatch(/peers/);
    expect(violation('operations/flows.ts', 'runtime/errors.ts')).toBeUndefined();
    expect(violation('generator/load.ts', 'runtime/ids.ts')).toMatch(/generator imports nothing/);
    expect(importCycles(new Map([['a.ts', ['b.ts']], ['b.ts', ['a.ts']], ['c.ts', ['a.ts']]]))).toEqual([['a.ts', 'b.ts']]);
  });
});
