// `npx tsx bench/callgrind-parts.ts <dir>`: where the server's instructions go in each step
// that `bench:phases --callgrind` dumped (callgrind.out.<pid>.<k> in <dir>, the server's
// working directory), by part of the server: Lua bytecode, tables, strings, garbage
// collection, allocation, the rest of Lua, the scripting bridge, and the server's own command
// work. Then, for the lifecycle, the contract's four calls against case 7's floor and FCALL
// cost: contract − floor − FCALL is what the Lua logic costs, part by part.
// Needs a redis-server with symbols (Debian's is stripped: everything lands in "unnamed");
// bench/README.md says how to build one from Debian's source package.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const PARTS = ['Lua bytecode', 'Lua tables', 'Lua strings', 'Lua GC', 'allocation', 'Lua calls, API, libraries', 'scripting bridge', 'server commands and I/O', 'unnamed'] as const;
type Part = (typeof PARTS)[number];

/** The part of the server a function belongs to, by its source file and name. */
function partOf(file: string, fn: string): Part {
  if (fn.startsWith('0x') || file === '???') return 'unnamed';
  if (fn.startsWith('luaV_execute')) return 'Lua bytecode';
  if (file.endsWith('ltable.c') || /^luaV_(get|set)table/.test(fn)) return 'Lua tables';
  if (file.endsWith('lstring.c') || file.endsWith('lzio.c') || fn.startsWith('luaV_concat')) return 'Lua strings';
  if (file.endsWith('lgc.c')) return 'Lua GC';
  if (file.endsWith('lmem.c') || /malloc|zmalloc\.c/.test(file) || /^(_int_)?(malloc|free|realloc)|^malloc_|^unlink_chunk/.test(fn)) return 'allocation';
  if (file.includes('/deps/lua/')) return 'Lua calls, API, libraries';
  if (/\/(script_lua|function_lua|script|functions|eval)\.c$/.test(file)) return 'scripting bridge';
  return 'server commands and I/O';
}

/** Self cost (Ir) per part of one callgrind dump, and the name it was dumped under. */
function readDump(path: string): { name: string; parts: Map<Part, number> } {
  const files = new Map<string, string>();
  const fns = new Map<string, string>();
  const parts = new Map<Part, number>();
  let name = path;
  let file = '???';
  let part: Part = 'unnamed';
  let skipNext = false; // the line after calls= is the call's inclusive cost, not self cost
  const named = (table: Map<string, string>, spec: string) => {
    const m = /^\((\d+)\)(?: (.*))?$/.exec(spec);
    if (!m) return spec;
    if (m[2] !== undefined) table.set(m[1]!, m[2]);
    return table.get(m[1]!) ?? '???';
  };
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const trigger = /^desc: Trigger: dump (.+)$/.exec(line);
    if (trigger) name = trigger[1]!;
    else if (line.startsWith('fl=')) file = named(files, line.slice(3));
    else if (line.startsWith('fi=') || line.startsWith('fe=')) named(files, line.slice(3));
    else if (line.startsWith('cfi=') || line.startsWith('cfl=')) named(files, line.slice(4));
    else if (line.startsWith('fn=')) part = partOf(file, named(fns, line.slice(3)));
    else if (line.startsWith('cfn=')) named(fns, line.slice(4));
    else if (line.startsWith('calls=')) skipNext = true;
    else if (/^[+\-*\d]/.test(line)) {
      if (skipNext) skipNext = false;
      else parts.set(part, (parts.get(part) ?? 0) + Number(line.split(' ')[1] ?? 0));
    }
  }
  return { name, parts };
}

const dir = process.argv[2] ?? '.';
const n = Number(process.argv[3] ?? 1000);
const dumps = readdirSync(dir)
  .filter((f) => /^callgrind\.out\.\d+\.\d+$/.test(f))
  .sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()))
  .map((f) => readDump(join(dir, f)));
const k = (ir: number) => `${(ir / n / 1000).toFixed(1)} k`;
console.log(`| step | ${PARTS.join(' | ')} | total |`);
console.log(`| --- |${' ---: |'.repeat(PARTS.length + 1)}`);
for (const d of dumps) {
  const total = [...d.parts.values()].reduce((a, b) => a + b, 0);
  console.log(`| ${d.name} | ${PARTS.map((p) => k(d.parts.get(p) ?? 0)).join(' | ')} | ${k(total)} |`);
}

// The lifecycle: contract, floor and FCALL cost summed over the four steps, and what is left.
const byName = new Map(dumps.map((d) => [d.name, d.parts]));
const steps = ['create', 'grant', 'claim', 'complete'];
const sum = (prefix: string, p: Part) => steps.reduce((s, step) => s + (byName.get(`${prefix}${step}`)?.get(p) ?? 0), 0);
if (steps.every((s) => byName.has(s) && byName.has(`floor-${s}`) && byName.has(`fcall-${s}`))) {
  console.log('\n| part, per execution | contract | floor | FCALL cost | Lua logic (contract − floor − FCALL) |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  const rows = PARTS.map((p) => [p, sum('', p), sum('floor-', p), sum('fcall-', p)] as const);
  for (const [p, c, f, o] of [...rows, ['total', ...[1, 2, 3].map((i) => rows.reduce((s, r) => s + (r[i] as number), 0))] as const]) {
    console.log(`| ${p} | ${k(c)} | ${k(f)} | ${k(o)} | ${k(c - f - o)} |`);
  }
}
