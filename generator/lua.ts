// The Lua side: bundles lua/*.lua into one library source in a fixed order, reads the
// version from lua/version.lua (its single home), and checks the Lua against the spec.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import luaparse from 'luaparse';
import { SpecError, type SpecProblem } from './diagnostics.js';
import { argvRule } from './emit-lua-facts.js';
import type { FunctionSpec, Spec } from './model.js';

/** Bundle order: helpers first, then the modules in the reference's order, then any others. */
const ORDER = ['helpers', 'version', 'lease', 'execution', 'scheduling', 'suspension', 'signal', 'stream', 'budget', 'quota', 'flow'];

export interface LuaBundle {
  readonly source: string;
  readonly version: string;
  /** Bundle line (1-based) → [file, line in file]. */
  readonly lineMap: readonly (readonly [string, number])[];
}

export function luaFiles(luaDir: string): string[] {
  const present = readdirSync(luaDir).filter((f) => f.endsWith('.lua')).map((f) => f.slice(0, -4));
  const known = ORDER.filter((name) => present.includes(name));
  const others = present.filter((name) => !ORDER.includes(name)).sort();
  return [...known, ...others].map((name) => `${name}.lua`);
}

export function readVersion(luaDir: string): string {
  const file = join(luaDir, 'version.lua');
  const fail = (message: string): never => {
    throw new SpecError([{ file: 'lua/version.lua', line: 1, column: 1, message }]);
  };
  if (!existsSync(file)) fail('lua/version.lua is missing: it holds the library version');
  const code = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => !line.trim().startsWith('--'))
    .join('\n');
  const matches = [...code.matchAll(/return '([^'"\r\n]*)'/g)];
  if (matches.length !== 1) fail(`lua/version.lua must contain exactly one return '<version>', found ${matches.length}`);
  const version = matches[0]![1]!;
  if (version.length === 0 || version.length >= 64) fail('the version must be 1 to 63 characters');
  return version;
}

/**
 * Bundles lua/*.lua under the library header. `keyCounts` (function → number of fixed KEYS,
 * from spec/) is written first as the Lua table FUNCTION_KEYS, which the guard reads; `facts`
 * (more generated Lua, see emit-lua-facts.ts) follows it.
 */
export function bundleLua(luaDir: string, keyCounts: ReadonlyMap<string, number> = new Map(), facts: readonly string[] = []): LuaBundle {
  const table = [...keyCounts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, count]) => `  ${name} = ${count},`);
  const generated = ['-- generated from spec/: the number of fixed KEYS of every function', 'local FUNCTION_KEYS = {', ...table, '}', ...facts];
  const parts = ['#!lua name=flowfabric', ...generated];
  const lineMap: [string, number][] = [['(header)', 1], ...generated.map((): [string, number] => ['(generated)', 0])];
  for (const file of luaFiles(luaDir)) {
    let text = readFileSync(join(luaDir, file), 'utf8');
    if (!text.endsWith('\n')) text += '\n';
    parts.push('', `-- source: lua/${file}`, text.slice(0, -1));
    lineMap.push(['(blank)', 0], [`lua/${file}`, 0]);
    text.slice(0, -1).split('\n').forEach((_, i) => lineMap.push([`lua/${file}`, i + 1]));
  }
  return { source: `${parts.join('\n')}\n`, version: readVersion(luaDir), lineMap };
}

/**
 * Globals read by code that runs when the library is loaded: the chunk's own statements,
 * and the bodies of the chunk's functions they call (`Susp.fields(...)`, `guard(...)`), but
 * not the bodies of functions only registered or returned. During FUNCTION LOAD the server
 * exposes only `redis` (register_function, log…): a load-time `string.sub` or `select`
 * fails the load.
 */
function loadTimeGlobals(ast: LuaNode): { name: string; line: number }[] {
  const nameOf = (node: unknown): string | undefined => {
    const n = node as LuaNode | undefined;
    if (n?.type === 'Identifier') return String(n.name);
    if (n?.type === 'MemberExpression') {
      const base = nameOf(n.base);
      return base === undefined ? undefined : `${base}.${String((n.identifier as LuaNode).name)}`;
    }
    return undefined;
  };
  const declared = new Map<string, LuaNode>();
  for (const statement of ast.body as LuaNode[]) {
    if (statement.type !== 'FunctionDeclaration') continue;
    const name = nameOf(statement.identifier);
    if (name !== undefined) declared.set(name, statement);
  }
  const uses: { name: string; line: number }[] = [];
  const entered = new Set<LuaNode>();
  const visit = (node: unknown, skipIdentifier = false): void => {
    if (Array.isArray(node)) return node.forEach((child) => visit(child));
    if (!node || typeof node !== 'object') return;
    const n = node as LuaNode;
    if (n.type === 'FunctionDeclaration' || n.type === 'FunctionExpression') return; // runs later, if called
    if (n.type === 'Identifier') {
      if (!skipIdentifier && n.isLocal === false && n.name !== 'redis') {
        uses.push({ name: String(n.name), line: (n.loc as { start: { line: number } }).start.line });
      }
      return;
    }
    if (n.type === 'CallExpression' || n.type === 'StringCallExpression' || n.type === 'TableCallExpression') {
      const callee = declared.get(nameOf(n.base) ?? '');
      if (callee && !entered.has(callee)) {
        entered.add(callee);
        visit(callee.body);
      }
    }
    for (const [key, value] of Object.entries(n)) {
      if (key === 'loc' || key === 'range') continue;
      // A field name (`t.name`, `{ name = … }`) is not a variable.
      const isFieldName = (n.type === 'MemberExpression' && key === 'identifier') || (n.type === 'TableKeyString' && key === 'key');
      visit(value, isFieldName);
    }
  };
  visit(ast.body);
  return uses;
}

/** Globals a function library may read; anything else free is a typo or a missing helper. */
const ALLOWED_GLOBALS = new Set([
  'redis', 'cjson', 'bit', 'struct', 'cmsgpack', 'math', 'string', 'table', 'tonumber', 'tostring', 'type', 'pairs',
  'ipairs', 'unpack', 'pcall', 'error', 'select', 'next', 'rawget', 'rawset', 'setmetatable', 'getmetatable', 'assert',
]);

interface Registration {
  readonly name: string;
  /** The name given to guard(name, callback), when the callback is guarded. */
  readonly guardName: string | undefined;
  readonly line: number;
  readonly noWrites: boolean;
  readonly keysParam: string | undefined;
  readonly argsParam: string | undefined;
  readonly body: unknown;
}

type LuaNode = { type: string; [key: string]: unknown };

function stringValue(node: LuaNode | undefined): string | undefined {
  if (!node || node.type !== 'StringLiteral') return undefined;
  return String(node.raw).slice(1, -1);
}

function registrations(ast: LuaNode): Registration[] {
  const found: Registration[] = [];
  walk(ast, (node) => {
    const base = node.base as LuaNode | undefined;
    const isRegister =
      base?.type === 'MemberExpression' &&
      (base.identifier as LuaNode).name === 'register_function' &&
      (base.base as LuaNode).name === 'redis';
    if (!isRegister) return;
    let name: string | undefined;
    let callback: LuaNode | undefined;
    let noWrites = false;
    if (node.type === 'CallExpression') {
      const args = node.arguments as LuaNode[];
      name = stringValue(args[0]);
      callback = args[1];
    } else if (node.type === 'TableCallExpression') {
      for (const field of ((node.arguments as LuaNode).fields as LuaNode[]) ?? []) {
        const key = (field.key as LuaNode | undefined)?.name;
        const value = field.value as LuaNode;
        if (key === 'function_name') name = stringValue(value);
        if (key === 'callback') callback = value;
        if (key === 'flags') noWrites = ((value.fields as LuaNode[]) ?? []).some((f) => stringValue(f.value as LuaNode) === 'no-writes');
      }
    }
    // A callback may be wrapped once: guard('ff_x', function(keys, args) … end).
    let guardName: string | undefined;
    if (callback?.type === 'CallExpression') {
      const wrapped = callback.arguments as LuaNode[];
      guardName = stringValue(wrapped[0]);
      callback = wrapped.find((a) => a.type === 'FunctionDeclaration');
    }
    const params = callback?.type === 'FunctionDeclaration' ? (callback.parameters as LuaNode[]) : [];
    found.push({
      name: name ?? '',
      guardName,
      line: (node.loc as { start: { line: number } }).start.line,
      noWrites,
      keysParam: params[0]?.name as string | undefined,
      argsParam: params[1]?.name as string | undefined,
      body: callback?.body,
    });
  });
  return found;
}

function walk(node: unknown, visit: (node: LuaNode) => void): void {
  if (Array.isArray(node)) {
    for (const child of node) walk(child, visit);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const lua = node as LuaNode;
  if (typeof lua.type === 'string') visit(lua);
  for (const [key, value] of Object.entries(lua)) {
    if (key !== 'loc' && value && typeof value === 'object') walk(value, visit);
  }
}

/**
 * The index a K / A field reads (`name = keys[3]`, `name = args[8] or ''`), or undefined
 * when its value is not such a read of the given table.
 */
function readIndex(value: LuaNode | undefined, param: string | undefined): number | undefined {
  let node = value;
  if (node?.type === 'LogicalExpression' && node.operator === 'or') node = node.left as LuaNode;
  if (node?.type !== 'IndexExpression') return undefined;
  const base = node.base as LuaNode;
  const index = node.index as LuaNode;
  if (base.type !== 'Identifier' || base.name !== param || index.type !== 'NumericLiteral') return undefined;
  return Number(index.value);
}

/** The field a K / A entry reads by name (`usage = args.usage`), or undefined. */
function readName(value: LuaNode | undefined, param: string | undefined): string | undefined {
  if (value?.type !== 'MemberExpression' || value.indexer !== '.') return undefined;
  const base = value.base as LuaNode;
  if (base.type !== 'Identifier' || base.name !== param) return undefined;
  return String((value.identifier as LuaNode).name);
}

/**
 * Highest literal `keys[n]` / `args[n]` read in a body, `args[…]` reads by a computed index,
 * and the K / A tables' field order. `argvReads` says what the n-th A field must read: a
 * fixed slot `args[n]`, a list or group and every slot after it `args.<name>` (the guard
 * placed them).
 */
function bodyFacts(reg: Registration, argvReads: readonly (number | string)[] = []): {
  maxKey: number; maxArg: number; computedArgs: number[]; kNames: string[] | undefined; aNames: string[] | undefined; misplaced: string[];
} {
  let maxKey = 0;
  let maxArg = 0;
  const computedArgs: number[] = [];
  let kNames: string[] | undefined;
  let aNames: string[] | undefined;
  const misplaced: string[] = [];
  walk(reg.body, (node) => {
    if (node.type === 'IndexExpression') {
      const base = node.base as LuaNode;
      const index = node.index as LuaNode;
      if (base.type === 'Identifier' && index.type === 'NumericLiteral') {
        const n = Number(index.value);
        if (base.name === reg.keysParam) maxKey = Math.max(maxKey, n);
        if (base.name === reg.argsParam) maxArg = Math.max(maxArg, n);
      } else if (base.type === 'Identifier' && base.name === reg.argsParam) {
        computedArgs.push((node.loc as { start: { line: number } }).start.line);
      }
    }
    if (node.type === 'LocalStatement') {
      const variables = node.variables as LuaNode[];
      const init = node.init as LuaNode[];
      variables.forEach((variable, i) => {
        const table = init[i];
        if (table?.type !== 'TableConstructorExpression') return;
        const fields = (table.fields as LuaNode[]).filter((f) => f.type === 'TableKeyString');
        const names = fields.map((f) => String((f.key as LuaNode).name));
        const first = (variable.name === 'K' && kNames === undefined) || (variable.name === 'A' && aNames === undefined);
        if (variable.name === 'K' && kNames === undefined) kNames = names;
        if (variable.name === 'A' && aNames === undefined) aNames = names;
        if (!first) return;
        // Order and index: the n-th field must read keys[n] / args[n].
        const param = variable.name === 'K' ? reg.keysParam : reg.argsParam;
        const table_ = variable.name === 'K' ? 'keys' : 'args';
        fields.forEach((f, n) => {
          const at = readIndex(f.value as LuaNode, param);
          const expected = variable.name === 'A' ? (argvReads[n] ?? n + 1) : n + 1;
          if (typeof expected === 'string') {
            const named = readName(f.value as LuaNode, param);
            if (named !== expected) misplaced.push(`${variable.name}.${names[n]} reads ${named !== undefined ? `${table_}.${named}` : at !== undefined ? `${table_}[${at}]` : 'neither'}, expected ${table_}.${expected} (the guard places a list and the slots after it)`);
            return;
          }
          if (at !== expected) misplaced.push(`${variable.name}.${names[n]} reads ${at === undefined ? 'no literal ' + table_ + '[n]' : `${table_}[${at}]`}, expected ${table_}[${expected}]`);
        });
      });
    }
  });
  return { maxKey, maxArg, computedArgs, kNames, aNames, misplaced };
}

/** What each A field reads, in spec order: `args[n]` before a list or group, `args.<name>` from it on. */
function argvReads(fn: FunctionSpec): (number | string)[] {
  const at = fn.argv.findIndex((a) => a.type === 'list' || a.type === 'group');
  return fn.argv.map((a, i) => (at < 0 || i < at ? i + 1 : a.name));
}

/** Names of a call's callee: `x`, `Exec.y` (one level of member access). */
function calleeName(node: LuaNode | undefined): string | undefined {
  if (node?.type === 'Identifier') return String(node.name);
  if (node?.type === 'MemberExpression' && (node.base as LuaNode).type === 'Identifier') {
    return `${String((node.base as LuaNode).name)}.${String((node.identifier as LuaNode).name)}`;
  }
  return undefined;
}

/**
 * The error codes a body can reply, followed through the chunk's own functions it calls:
 * literal first arguments of `err('code', …)` and literal `{ 0, 'code', … }` replies.
 * Codes computed at run time are not seen; a helper called as `not f(…)` is a test.
 */
function errorCodes(ast: LuaNode): (body: unknown) => Set<string> {
  const declared = new Map<string, LuaNode>();
  walk(ast.body, (node) => {
    if (node.type !== 'FunctionDeclaration') return;
    const name = calleeName(node.identifier as LuaNode | undefined);
    if (name !== undefined && !declared.has(name)) declared.set(name, node);
  });
  const memo = new Map<LuaNode, Set<string>>();
  const collect = (body: unknown, seen: Set<LuaNode>): Set<string> => {
    const codes = new Set<string>();
    // `not f(…)` uses a reply-or-nil helper as a test: its replies are not replied.
    const predicates = new Set<LuaNode>();
    walk(body, (node) => {
      if (node.type === 'UnaryExpression' && node.operator === 'not') predicates.add(node.argument as LuaNode);
      if (node.type === 'CallExpression' && !predicates.has(node)) {
        const name = calleeName(node.base as LuaNode);
        const args = node.arguments as LuaNode[];
        if (name === 'err') {
          const code = stringValue(args[0]);
          if (code !== undefined) codes.add(code);
          // err('code:' .. detail): the code is the literal before the colon.
          const left = args[0]?.type === 'BinaryExpression' && args[0].operator === '..' ? stringValue(args[0].left as LuaNode) : undefined;
          if (left !== undefined && left.endsWith(':')) codes.add(left.slice(0, -1));
        } else if (name !== undefined) {
          const target = declared.get(name);
          if (target && !seen.has(target)) {
            seen.add(target);
            let found = memo.get(target);
            if (!found) {
              found = collect(target.body, seen);
              memo.set(target, found);
            }
            found.forEach((c) => codes.add(c));
          }
        }
      }
      // A helper that returns a code as text (for the caller's err(code)).
      if (node.type === 'ReturnStatement') {
        for (const arg of (node.arguments as LuaNode[]) ?? []) {
          const text = stringValue(arg);
          if (text !== undefined) codes.add(`?${text}`);
        }
      }
      if (node.type === 'TableConstructorExpression') {
        const fields = node.fields as LuaNode[];
        const first = fields[0]?.value as LuaNode | undefined;
        if (fields[0]?.type === 'TableValue' && first?.type === 'NumericLiteral' && Number(first.value) === 0 && fields[1]?.type === 'TableValue') {
          const code = stringValue(fields[1].value as LuaNode);
          if (code !== undefined) codes.add(code);
        }
      }
    });
    return codes;
  };
  return (body) => collect(body, new Set());
}

/**
 * Facts of spec/ typed again in lua/ (issue 11): a string literal starting `ff:` (a key
 * pattern or channel: build it with the generated KEY.<context>_<key>), and a table of two or
 * more string values, or a set of two or more `value = true` keys, that all belong to one
 * named enum (use ENUMS.<name>). Only lua/ files are checked, not the generated part.
 */
function handTypedFacts(spec: Spec, ast: LuaNode, where: (line: number) => { file: string; line: number; column: number }): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const lineOf = (node: LuaNode) => (node.loc as { start: { line: number } }).start.line;
  const fromLua = (node: LuaNode) => where(lineOf(node)).file.startsWith('lua/');
  const enumOf = (values: readonly string[]) =>
    values.length < 2
      ? undefined
      : (spec.enums.find((e) => e.values.length === values.length && values.every((v) => e.values.includes(v))) ??
        spec.enums.find((e) => values.every((v) => e.values.includes(v))));
  walk(ast.body, (node) => {
    if (node.type === 'StringLiteral' && fromLua(node) && /^ff:/.test(stringValue(node) ?? '')) {
      problems.push({ ...where(lineOf(node)), message: `key pattern '${stringValue(node)}…' typed by hand: build keys with KEY.<context>_<key> (generated from spec/keys.yaml)` });
    }
    if (node.type !== 'TableConstructorExpression' || !fromLua(node)) return;
    const fields = (node.fields as LuaNode[]) ?? [];
    const listed = fields.every((f) => f.type === 'TableValue' && (f.value as LuaNode).type === 'StringLiteral')
      ? fields.map((f) => stringValue(f.value as LuaNode) ?? '')
      : fields.every((f) => f.type === 'TableKeyString' && (f.value as LuaNode).type === 'BooleanLiteral')
        ? fields.map((f) => String((f.key as LuaNode).name))
        : [];
    const named = enumOf(listed);
    if (named) problems.push({ ...where(lineOf(node)), message: `values of enum ${named.name} typed by hand (${listed.join(', ')}): use ENUMS.${named.name} (generated from spec/enums.yaml)` });
  });
  return problems;
}

/** Calls that parse or validate a value: on an ARGV they are a hand-written ARGV rule. */
const PARSERS = new Set(['tonumber', 'parse_int', 'parse_number', 'int_refusal', 'argv_refusal', 'json_arg', 'cjson.decode']);

/**
 * No ARGV rule written by hand in lua/ (issue 11): the guard's generated check (ARGV_CHECKS,
 * from the spec) parses and validates every ARGV before the body runs, so a body, or a chunk
 * function it passes an ARGV-derived value to, that calls a parser (tonumber, parse_int,
 * parse_number, int_refusal, cjson.decode…) on such a value restates a rule the spec should
 * hold. ARGV-derived: the callback's `args`, and every local or parameter given a value built
 * from it (the A table, its fields, elements of its lists), followed through assignments and
 * calls; not what the server returns (`redis.call(…)`), nor the JSON the guard decoded
 * (`args.json`, whose shape spec/shapes.yaml declares).
 */
function handArgvRules(ast: LuaNode, registered: readonly Registration[], where: (line: number) => { file: string; line: number; column: number }): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const lineOf = (node: LuaNode) => (node.loc as { start: { line: number } }).start.line;
  const declared = new Map<string, LuaNode>();
  walk(ast.body, (node) => {
    if (node.type !== 'FunctionDeclaration') return;
    const name = calleeName(node.identifier as LuaNode | undefined);
    if (name !== undefined && !declared.has(name)) declared.set(name, node);
  });
  const reported = new Set<string>();
  const visited = new Set<string>();
  const analyse = (owner: string, body: unknown, seeds: readonly string[], via: string, tables: readonly string[]): void => {
    const tainted = new Set(seeds);
    /** True when an expression carries an ARGV-derived value. */
    const carries = (node: unknown): boolean => {
      if (Array.isArray(node)) return node.some(carries);
      if (!node || typeof node !== 'object') return false;
      const n = node as LuaNode;
      switch (n.type) {
        case 'Identifier': return tainted.has(String(n.name));
        case 'FunctionDeclaration': return false;
        // A field of an ARGV-derived table (not the decoded JSON); a stored value read by an ARGV-derived name is not.
        case 'MemberExpression': return String((n.identifier as LuaNode).name) !== 'json' && carries(n.base);
        case 'IndexExpression': return carries(n.base);
        // Text functions pass their argument on; any other call's result is its own (stored state, a key, a reply).
        case 'CallExpression': case 'StringCallExpression': case 'TableCallExpression': {
          const callee = calleeName(n.base as LuaNode) ?? '';
          return (callee.startsWith('string.') || callee === 'tostring') && carries(n.arguments);
        }
      }
      return Object.entries(n).some(([key, value]) => key !== 'loc' && key !== 'range' && value !== null && typeof value === 'object' && carries(value));
    };
    // Locals and names assigned an ARGV-derived value, to a fixed point (flow-insensitive).
    for (let grew = true; grew; ) {
      grew = false;
      const mark = (target: LuaNode | undefined) => {
        if (target?.type === 'Identifier' && !tainted.has(String(target.name))) {
          tainted.add(String(target.name));
          grew = true;
        }
      };
      walk(body, (node) => {
        if (node.type === 'LocalStatement' || node.type === 'AssignmentStatement') {
          const variables = node.variables as LuaNode[];
          const init = node.init as LuaNode[];
          variables.forEach((variable, i) => {
            const value = init[Math.min(i, init.length - 1)];
            if (value && i < init.length && carries(value)) mark(variable);
          });
        }
        if (node.type === 'ForGenericStatement' && carries(node.iterators)) (node.variables as LuaNode[]).forEach(mark);
      });
    }
    walk(body, (node) => {
      // The ARGV table itself, read by a computed index in a helper it was passed to (the body's own such reads are refused with its A table).
      if (node.type === 'IndexExpression' && owner !== via && (node.base as LuaNode).type === 'Identifier' && tables.includes(String((node.base as LuaNode).name)) && (node.index as LuaNode).type !== 'NumericLiteral') {
        const key = `${lineOf(node)}:index`;
        if (!reported.has(key)) {
          reported.add(key);
          problems.push({ ...where(lineOf(node)), message: `${via}: ${owner} reads ARGV by a computed index: the guard places a list and the slots after it (pass A.<name>)` });
        }
      }
      if (node.type !== 'CallExpression') return;
      const callee = calleeName(node.base as LuaNode);
      const args = node.arguments as LuaNode[];
      if (callee === undefined) return;
      if (PARSERS.has(callee) && args.some(carries)) {
        const key = `${lineOf(node)}:${callee}`;
        if (!reported.has(key)) {
          reported.add(key);
          problems.push({ ...where(lineOf(node)), message: `${via}: ${callee}(…) parses an ARGV-derived value by hand: declare the slot's type and rule in the spec (the guard's generated check converts it before the body runs)` });
        }
        return;
      }
      const target = declared.get(callee);
      if (!target || target.type !== 'FunctionDeclaration') return;
      const params = (target.parameters as LuaNode[]).map((p) => String(p.name));
      const given = params.filter((_, i) => args[i] !== undefined && carries(args[i]));
      if (given.length === 0) return;
      const passed = params.filter((_, i) => args[i]?.type === 'Identifier' && tables.includes(String(args[i]!.name)));
      const key = `${via}:${callee}(${given.join(',')};${passed.join(',')})`;
      if (visited.has(key)) return;
      visited.add(key);
      analyse(callee, target.body, given, via, passed);
    });
  };
  for (const reg of registered) {
    if (reg.argsParam) analyse(reg.name, reg.body, [reg.argsParam], reg.name, [reg.argsParam]);
  }
  return problems;
}

function fixedKeyCount(fn: FunctionSpec): { fixed: number; variable: boolean } {
  return { fixed: fn.keys.filter((k) => k.each === undefined).length, variable: fn.keys.some((k) => k.each !== undefined) };
}

function argvWidth(fn: FunctionSpec): { fixed: number; variable: boolean } {
  const variable = fn.argv.some((a) => a.type === 'list' || a.type === 'group');
  const fixed = fn.argv.filter((a) => a.type !== 'list' && a.type !== 'group').length + fn.argv.filter((a) => (a.type === 'list' || a.type === 'group') && a.count !== 'none').length;
  return { fixed, variable };
}

/**
 * Checks the bundled Lua against the spec. Problems point at the Lua file and line.
 * A spec function not yet registered in Lua is reported separately (`unregistered`): codegen
 * treats it as a warning while a function is being written, the strict check as an error.
 */
export function checkLua(
  spec: Spec,
  bundle: LuaBundle,
  keyCounts: ReadonlyMap<string, number> = new Map(),
  argvMin: ReadonlyMap<string, number> = new Map(),
): SpecProblem[] & { unregistered?: SpecProblem[] } {
  const problems: SpecProblem[] = [];
  const where = (bundleLine: number) => {
    const [file, line] = bundle.lineMap[bundleLine - 1] ?? ['lua', bundleLine];
    return { file, line, column: 1 };
  };
  let ast: LuaNode;
  try {
    ast = luaparse.parse(bundle.source.replace(/^#!.*\n/, '\n'), { luaVersion: '5.1', locations: true, scope: true, comments: true }) as unknown as LuaNode;
  } catch (error) {
    const e = error as { line?: number; message: string };
    return [{ ...where(e.line ?? 1), message: `Lua syntax error: ${e.message}` }];
  }
  for (const global of (ast.globals as LuaNode[]) ?? []) {
    const name = String(global.name);
    if (!ALLOWED_GLOBALS.has(name)) {
      problems.push({ ...where((global.loc as { start: { line: number } }).start.line), message: `free name '${name}' is neither a local nor an allowed global (missing helper or typo?)` });
    }
  }
  problems.push(...handTypedFacts(spec, ast, where));
  for (const use of loadTimeGlobals(ast)) {
    problems.push({ ...where(use.line), message: `'${use.name}' is read while the library loads, where the server offers only 'redis' (move it into a function that runs at call time)` });
  }
  const specFunctions = new Map(spec.modules.flatMap((m) => m.functions.map((f) => [f.name, f] as const)));
  const registered = registrations(ast);
  const codesOf = errorCodes(ast);
  const markerLines = ((ast.comments as LuaNode[]) ?? [])
    .filter((c) => String(c.value).trim() === WRITE_PHASE_MARKER)
    .map((c) => (c.loc as { start: { line: number } }).start.line);
  const phaseProblems = writePhaseProblems(ast, markerLines, where);
  problems.push(...handArgvRules(ast, registered, where));
  const catalogue = new Set(spec.errors.map((e) => e.code));
  const registeredNames = new Set<string>();
  for (const reg of registered) {
    const at = where(reg.line);
    if (registeredNames.has(reg.name)) problems.push({ ...at, message: `${reg.name} is registered twice` });
    registeredNames.add(reg.name);
    const fn = specFunctions.get(reg.name);
    if (!fn) {
      problems.push({ ...at, message: `${reg.name || '(unnamed)'} is registered in Lua but has no spec` });
      continue;
    }
    if (reg.guardName !== undefined && reg.guardName !== reg.name) {
      problems.push({ ...at, message: `${reg.name} is guarded under another name ('${reg.guardName}')` });
    }
    if (fn.readonly !== reg.noWrites) {
      problems.push({ ...at, message: `${reg.name}: spec says readonly=${fn.readonly} but the registration ${reg.noWrites ? 'has' : 'lacks'} the no-writes flag` });
    }
    if (!fn.readonly) problems.push(...phaseProblems(reg, fn));
    const reads = argvReads(fn);
    const facts = bodyFacts(reg, reads);
    const keys = fixedKeyCount(fn);
    const argv = argvWidth(fn);
    if (!keys.variable && facts.maxKey > keys.fixed) problems.push({ ...at, message: `${reg.name} reads KEYS[${facts.maxKey}] but the spec declares ${keys.fixed} KEYS` });
    if (!argv.variable && facts.maxArg > argv.fixed) problems.push({ ...at, message: `${reg.name} reads ARGV[${facts.maxArg}] but the spec declares ${argv.fixed} ARGV` });
    // A list or group, and every slot after it, the guard checks and places (args.<name>): the
    // body reads no ARGV past the fixed slots before it, and none by a computed index.
    const placedFrom = reads.findIndex((r) => typeof r === 'string');
    if (argv.variable && placedFrom >= 0 && facts.maxArg > placedFrom) problems.push({ ...at, message: `${reg.name} reads ARGV[${facts.maxArg}], past its fixed slots: read A.${String(reads[placedFrom])} and the slots after it (args.<name>, placed by the guard)` });
    for (const line of facts.computedArgs) problems.push({ ...where(line), message: `${reg.name} reads ARGV by a computed index: the guard places a list and the slots after it (read args.<name>)` });
    // Error codes: every one a body can reply is in spec/errors.yaml and in its errors list,
    // and every listed one can be replied (the guard adds invalid_input).
    const found = codesOf(reg.body);
    // Texts returned by helpers may become codes through err(code): they count as possible only.
    const possible = new Set([...found].filter((c) => c.startsWith('?')).map((c) => c.slice(1)));
    const replied = new Set([...found].filter((c) => !c.startsWith('?')));
    const guarded = reg.guardName !== undefined;
    if (guarded && ((keyCounts.get(reg.name) ?? 0) > 0 || (argvMin.get(reg.name) ?? 0) > 0)) replied.add('invalid_input'); // the guard's refusal
    // The guard's ARGV refusals (ARGV_RULES): invalid_input, or a slot's own code from the spec.
    if (guarded) {
      for (const slot of fn.argv) {
        const rule = argvRule(slot, 0, fn.params);
        if (rule) replied.add(slot.refusal?.code ?? 'invalid_input');
      }
    }
    for (const code of fn.errors) {
      if (!replied.has(code) && !possible.has(code)) problems.push({ ...at, message: `${reg.name} lists error '${code}', which no reply of its Lua carries` });
    }
    for (const code of replied) {
      if (!catalogue.has(code)) problems.push({ ...at, message: `${reg.name} replies error '${code}', which spec/errors.yaml does not declare` });
      else if (!fn.errors.includes(code)) problems.push({ ...at, message: `${reg.name} replies error '${code}', missing from its errors list in the spec` });
    }
    for (const m of facts.misplaced) problems.push({ ...at, message: `${reg.name}: ${m}` });
    const specKeyNames = fn.keys.filter((k) => k.each === undefined).map((k) => k.name);
    if (facts.kNames && facts.kNames.join(',') !== specKeyNames.join(',')) {
      problems.push({ ...at, message: `${reg.name}: Lua K table (${facts.kNames.join(', ')}) differs from the spec's KEYS (${specKeyNames.join(', ')})` });
    }
    const specArgNames = fn.argv.map((a) => a.name);
    if (facts.aNames && facts.aNames.join(',') !== specArgNames.join(',')) {
      problems.push({ ...at, message: `${reg.name}: Lua A table (${facts.aNames.join(', ')}) differs from the spec's ARGV (${specArgNames.join(', ')})` });
    }
  }
  const unregistered: SpecProblem[] = [];
  for (const fn of specFunctions.values()) {
    if (!registeredNames.has(fn.name)) unregistered.push({ file: fn.file, line: fn.line, column: 1, message: `${fn.name} has a spec but is not registered in lua/` });
  }
  return Object.assign(problems, { unregistered });
}

/** Server commands that write: a call of one of them is a write. */
const WRITE_COMMANDS = new Set([
  'HSET', 'HSETNX', 'HMSET', 'HDEL', 'HINCRBY', 'HINCRBYFLOAT', 'DEL', 'UNLINK', 'SET', 'SETNX', 'SETEX', 'PSETEX', 'GETDEL', 'GETSET',
  'INCR', 'INCRBY', 'INCRBYFLOAT', 'DECR', 'DECRBY', 'APPEND', 'EXPIRE', 'PEXPIRE', 'EXPIREAT', 'PEXPIREAT', 'PERSIST',
  'ZADD', 'ZREM', 'ZINCRBY', 'ZREMRANGEBYSCORE', 'ZREMRANGEBYRANK', 'ZPOPMIN', 'ZPOPMAX', 'SADD', 'SREM', 'SPOP', 'SMOVE',
  'XADD', 'XTRIM', 'XDEL', 'PUBLISH', 'RPUSH', 'LPUSH', 'LPOP', 'RPOP', 'LREM', 'LTRIM', 'LSET', 'RENAME', 'COPY',
]);

/** The marker comment that opens a function's write phase (`-- write phase`). */
export const WRITE_PHASE_MARKER = 'write phase';

type BlockOwner = { line: number; body: LuaNode[] };

/**
 * Check phase, then write phase (issue 11): in every registered function that writes, no write
 * (a `redis.call` of a writing command, or a call of a chunk function that makes one) comes
 * before a `-- write phase` marker comment, and no error reply (`err(…)`, `{ 0, 'code' }`) comes
 * after one. A marker covers the rest of its block and the blocks nested in it, so a function
 * with several branches marks each. The only exceptions are the spec's `writes_on_error`
 * codes (the reference's documented write-then-refuse, e.g. lease-expiry marking): such a
 * code may be replied after the marker, and a write before it is allowed in a block that
 * ends by replying such a code, or inside a helper that can reply one (`validate_lease`).
 */
function writePhaseProblems(
  ast: LuaNode,
  markerLines: readonly number[],
  where: (line: number) => { file: string; line: number; column: number },
): (reg: Registration, fn: FunctionSpec) => SpecProblem[] {
  const lineOf = (node: LuaNode) => (node.loc as { start: { line: number } }).start.line;
  const endOf = (node: LuaNode) => (node.loc as { end: { line: number } }).end.line;
  const declared = new Map<string, LuaNode>();
  walk(ast.body, (node) => {
    if (node.type !== 'FunctionDeclaration') return;
    const name = calleeName(node.identifier as LuaNode | undefined);
    if (name !== undefined && !declared.has(name)) declared.set(name, node);
  });
  // A command computed at run time (`redis.call(unpack(entry))`) counts as a write.
  const isWriteCommand = (node: LuaNode) => {
    if (node.type !== 'CallExpression' || !['redis.call', 'redis.pcall'].includes(calleeName(node.base as LuaNode) ?? '')) return false;
    const command = stringValue((node.arguments as LuaNode[])[0]);
    return command === undefined || WRITE_COMMANDS.has(command.toUpperCase());
  };
  // Chunk functions that write, directly or through the ones they call (to a fixed point).
  const writers = new Set<string>();
  for (let grew = true; grew; ) {
    grew = false;
    for (const [name, decl] of declared) {
      if (writers.has(name)) continue;
      let writes = false;
      walk(decl.body, (node) => {
        if (isWriteCommand(node) || (node.type === 'CallExpression' && writers.has(calleeName(node.base as LuaNode) ?? ''))) writes = true;
      });
      if (writes) {
        writers.add(name);
        grew = true;
      }
    }
  }
  const codesOf = errorCodes(ast);
  const replyCode = (node: LuaNode): string | undefined => {
    if (node.type === 'CallExpression' && calleeName(node.base as LuaNode) === 'err') return stringValue((node.arguments as LuaNode[])[0]) ?? '(computed)';
    if (node.type === 'TableConstructorExpression') {
      const fields = node.fields as LuaNode[];
      const first = fields[0]?.value as LuaNode | undefined;
      if (fields[0]?.type === 'TableValue' && first?.type === 'NumericLiteral' && Number(first.value) === 0 && fields[1]?.type === 'TableValue') {
        return stringValue(fields[1].value as LuaNode) ?? '(computed)';
      }
    }
    return undefined;
  };
  /** Expressions of a statement, without the blocks it holds (those are visited with their own coverage). */
  const ownParts = (statement: LuaNode): unknown[] => {
    switch (statement.type) {
      case 'IfStatement': return (statement.clauses as LuaNode[]).map((c) => c.condition);
      case 'WhileStatement': case 'RepeatStatement': return [statement.condition];
      case 'ForNumericStatement': return [statement.start, statement.end, statement.step];
      case 'ForGenericStatement': return [statement.iterators];
      case 'DoStatement': case 'FunctionDeclaration': return [];
      default: return [statement];
    }
  };
  const blocksOf = (statement: LuaNode): BlockOwner[] =>
    statement.type === 'IfStatement'
      ? (statement.clauses as LuaNode[]).map((c) => ({ line: lineOf(c), body: c.body as LuaNode[] }))
      : ['WhileStatement', 'RepeatStatement', 'ForNumericStatement', 'ForGenericStatement', 'DoStatement'].includes(statement.type)
        ? [{ line: lineOf(statement), body: statement.body as LuaNode[] }]
        : [];
  const endsReplying = (body: LuaNode[], codes: readonly string[]): boolean => {
    const last = body[body.length - 1];
    if (last?.type !== 'ReturnStatement') return false;
    let found = false;
    walk(last.arguments, (node) => {
      const code = replyCode(node);
      if (code !== undefined && codes.includes(code)) found = true;
    });
    return found;
  };
  const helperCanRefuse = (callee: string | undefined): boolean =>
    callee !== undefined && callee !== 'err' && declared.has(callee) && [...codesOf(declared.get(callee)!.body)].some((c) => !c.startsWith('?'));
  return (reg, fn) => {
    const problems: SpecProblem[] = [];
    const allowed = fn.writesOnError;
    /** Visits a block; true when it wrote and can fall through to the statements after it. */
    const visitBlock = (owner: BlockOwner, inherited: boolean): boolean => {
      let covered = inherited;
      let wrote = false;
      let previousEnd = owner.line;
      const refusesAfterWrite = allowed.length > 0 && endsReplying(owner.body, allowed);
      for (const statement of owner.body) {
        if (markerLines.some((line) => line > previousEnd && line < lineOf(statement))) covered = true;
        previousEnd = endOf(statement);
        for (const part of ownParts(statement)) {
          walk(part, (node) => {
            const callee = node.type === 'CallExpression' ? calleeName(node.base as LuaNode) : undefined;
            const helperWrites = callee !== undefined && writers.has(callee);
            if (isWriteCommand(node) || helperWrites) wrote = true;
            if (!covered && (isWriteCommand(node) || helperWrites)) {
              const helperRefuses = helperWrites && allowed.some((code) => { const codes = codesOf(declared.get(callee)!.body); return codes.has(code) || codes.has(`?${code}`); });
              if (!refusesAfterWrite && !helperRefuses) {
                const what = helperWrites ? `${callee}(…), which writes,` : `redis.call('${stringValue((node.arguments as LuaNode[])[0]) ?? '(computed)'}')`;
                problems.push({ ...where(lineOf(node)), message: `${reg.name}: ${what} comes before its '-- ${WRITE_PHASE_MARKER}' marker (check everything first, then write)` });
              }
            }
            // A helper that can reply an error code (read_core, validate_lease…) counts as its replies.
            if (covered && helperCanRefuse(callee)) {
              const codes = [...codesOf(declared.get(callee!)!.body)].filter((c) => !c.startsWith('?') && !allowed.includes(c));
              if (codes.length > 0) problems.push({ ...where(lineOf(node)), message: `${reg.name}: ${callee}(…) can reply error '${codes.join("', '")}' after its '-- ${WRITE_PHASE_MARKER}' marker (move the check before the first write, or declare the code in writes_on_error)` });
            }
            const code = covered ? replyCode(node) : undefined;
            if (code !== undefined && !allowed.includes(code)) {
              problems.push({ ...where(lineOf(node)), message: `${reg.name}: error reply '${code}' after its '-- ${WRITE_PHASE_MARKER}' marker (move the check before the first write, or declare the code in writes_on_error)` });
            }
          });
        }
        // A nested block that wrote and falls through starts the write phase of this one too.
        let nestedWrote = false;
        for (const block of blocksOf(statement)) if (visitBlock(block, covered)) nestedWrote = true;
        if (nestedWrote) covered = wrote = true;
      }
      return wrote && owner.body[owner.body.length - 1]?.type !== 'ReturnStatement';
    };
    if (Array.isArray(reg.body)) visitBlock({ line: reg.line, body: reg.body as LuaNode[] }, false);
    return problems;
  };
}
