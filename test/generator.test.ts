// The generator on a small fixture spec: golden output (regenerate with UPDATE_GOLDEN=1),
// determinism, and one bad-spec case per kind of error, each with its file, line and message.
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { STAMP_PATH, generate } from '../generator/codegen.js';
import { SpecError } from '../generator/diagnostics.js';

const fixture = join(import.meta.dirname, 'fixtures', 'small');
const golden = join(fixture, 'golden');
const goldenName = (path: string) => `${path.replace(/\//g, '__')}.golden`;
const run = (dir: string) => generate({ specDir: join(dir, 'spec'), luaDir: join(dir, 'lua'), displayRoot: dir, strict: true });

describe('generator on the fixture spec', () => {
  it('produces the golden output', () => {
    const files = run(fixture);
    if (process.env.UPDATE_GOLDEN) {
      rmSync(golden, { recursive: true, force: true });
      mkdirSync(golden);
      for (const [name, content] of files) writeFileSync(join(golden, goldenName(name)), content);
    }
    const expected = readdirSync(golden).sort();
    expect([...files.keys()].map(goldenName).sort()).toEqual(expected);
    for (const [name, content] of files) expect(content, name).toBe(readFileSync(join(golden, goldenName(name)), 'utf8'));
  });

  it('is deterministic', () => {
    expect([...run(fixture)]).toEqual([...run(fixture)]);
  });
});

/** ff_touch's one-line body in the fixture, and the same checks with `writes` between the ttl check and the existence check. */
const TOUCH_BODY = "if A.ttl_ms == nil then return { 0, 'invalid_input', 'ttl_ms is missing' } elseif redis.call('EXISTS', K.core) == 0 then return { 0, 'not_found' } else return ok(library_version()) end";
const PHASED = (writes: string) =>
  `if A.ttl_ms == nil then return { 0, 'invalid_input', 'ttl_ms is missing' } end\n${writes}  if redis.call('EXISTS', K.core) == 0 then return { 0, 'not_found' } end\n  return ok(library_version())`;

describe('bad specs fail with file, line and reason', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  /** Copies the fixture, applies one edit, and returns the codegen failure. */
  function failWith(file: string, edit: (text: string) => string): SpecError {
    const dir = mkdtempSync(join(tmpdir(), 'ff-spec-'));
    dirs.push(dir);
    cpSync(join(fixture, 'spec'), join(dir, 'spec'), { recursive: true });
    cpSync(join(fixture, 'lua'), join(dir, 'lua'), { recursive: true });
    const path = join(dir, file);
    const before = readFileSync(path, 'utf8');
    const after = edit(before);
    expect(after, 'the edit must change the file').not.toBe(before);
    writeFileSync(path, after);
    try {
      run(dir);
    } catch (error) {
      expect(error).toBeInstanceOf(SpecError);
      return error as SpecError;
    }
    throw new Error('codegen accepted a bad spec');
  }

  const cases: [string, string, (t: string) => string, RegExp][] = [
    ['YAML syntax', 'spec/demo.yaml', (t) => t.replace('doc: Touches an execution.', 'doc: [unclosed'), /^spec\/demo\.yaml:\d+:\d+: /],
    ['unknown property', 'spec/demo.yaml', (t) => t.replace('    readonly: true', '    readonly: true\n    colour: blue'), /^spec\/demo\.yaml:37:5: .*must NOT have additional properties 'colour'/],
    ['unknown argument type', 'spec/demo.yaml', (t) => t.replace('type: durationMs, min: 1', 'type: duration, min: 1'), /^spec\/demo\.yaml:15:\d+: .*argv\/1\/type must be equal to one of the allowed values/],
    ['unknown key reference', 'spec/demo.yaml', (t) => t.replace('      - exec.core\n', '      - exec.kore\n'), /^spec\/demo\.yaml:10:\d+: ff_touch: unknown key reference 'exec\.kore'/],
    ['KEYS across families', 'spec/demo.yaml', (t) => t.replace('      - exec.core\n', '      - exec.core\n      - budget.definition\n'), /^spec\/demo\.yaml:11:\d+: ff_touch: 'budget\.definition' is on partition family 'b' .*CROSSSLOT/],
    ['global key in KEYS', 'spec/demo.yaml', (t) => t.replace('      - exec.core\n', '      - exec.core\n      - global.config\n'), /ff_touch: 'global\.config' has no hash tag/],
    ['two variants on one status', 'spec/demo.yaml', (t) => t.replace('      "OK:skipped"', '      OK: []\n      "OK:skipped"'), /^spec\/demo\.yaml:\d+:\d+: ff_touch: two variants on status OK/],
    ['catch-all without as', 'spec/demo.yaml', (t) => t.replace('{ as: other, doc:', '{ doc:'), /^spec\/demo\.yaml:\d+:\d+: ff_touch: the catch-all OK:\* needs 'as'/],
    ['catch-all as a named sub-status', 'spec/demo.yaml', (t) => t.replace('{ as: other, doc:', '{ as: skipped, doc:'), /ff_touch: the catch-all's 'as: skipped' is also a sub-status of OK/],
    ['as outside a catch-all', 'spec/demo.yaml', (t) => t.replace('"OK:*": { as: other,', '"OK:other": { as: other,'), /ff_touch: 'as' belongs to a catch-all variant \(OK:\*\) only/],
    ['reply list without its element type', 'spec/demo.yaml', (t) => t.replace('{ name: members, type: list, of: executionId }', '{ name: members, type: list }'), /^spec\/demo\.yaml:30:\d+: ff_touch: 'members': a list needs 'of'/],
    ['when on a required argument', 'spec/demo.yaml', (t) => t.replace('{ name: lane_id, type: laneId, optional: true }', '{ name: lane_id, type: laneId }'), /^spec\/demo\.yaml:11:\d+: ff_touch: 'when' needs an optional single-value argument, got 'lane_id'/],
    ['unknown error code', 'spec/demo.yaml', (t) => t.replace('errors: [not_found, invalid_input]', 'errors: [not_found, no_such_code]'), /^spec\/demo\.yaml:31:\d+: ff_touch: unknown error code 'no_such_code'/],
    ['duplicate argument', 'spec/demo.yaml', (t) => t.replace('name: renew_ms', 'name: ttl_ms'), /^spec\/demo\.yaml:16:\d+: ff_touch: duplicate ARGV name 'ttl_ms'/],
    ['duplicate function across modules', 'spec/demo.yaml', (t) => t, /unreachable/],
    ['spec without Lua', 'lua/demo.lua', (t) => t.replace("'ff_touch'", "'ff_tuoch'"), /lua\/demo\.lua:1:1: ff_tuoch is registered in Lua but has no spec[\s\S]*spec\/demo\.yaml:4:\d+: ff_touch has a spec but is not registered/],
    ['Lua reads beyond declared KEYS', 'lua/demo.lua', (t) => t.replace('definition = keys[1] }', 'definition = keys[1] }\n    local extra = keys[3]'), /lua\/demo\.lua:7:1: ff_budget_info reads KEYS\[3\] but the spec declares 1 KEYS/],
    ['K table out of order', 'lua/demo.lua', (t) => t.replace('core = keys[1], lane = keys[2]', 'lane = keys[2], core = keys[1]'), /ff_touch: Lua K table \(lane, core\) differs from the spec's KEYS \(core, lane\)/],
    ['K field reading another KEYS index', 'lua/demo.lua', (t) => t.replace('core = keys[1], lane = keys[2]', 'core = keys[1], lane = keys[1]'), /ff_touch: K\.lane reads keys\[1\], expected keys\[2\]/],
    ['error code listed but never replied', 'lua/demo.lua', (t) => t.replace("return { 0, 'not_found' }", "return { 0, 'invalid_input' }"), /ff_touch lists error 'not_found', which no reply of its Lua carries/],
    ['error code missing from the errors list', 'lua/demo.lua', (t) => t.replace("return ok('0')", "return { 0, 'not_found' }"), /ff_budget_info replies error 'not_found', missing from its errors list/],
    ['error code not in the catalogue', 'lua/demo.lua', (t) => t.replace("return { 0, 'not_found' }", "return { 0, 'no_such_code' }"), /ff_touch replies error 'no_such_code', which spec\/errors\.yaml does not declare/],
    ['readonly flag mismatch', 'lua/demo.lua', (t) => t.replace("flags = { 'no-writes' },", ''), /ff_budget_info: spec says readonly=true but the registration lacks the no-writes flag/],
    ['global read while the library loads', 'lua/demo.lua', (t) => `local WIDTH = string.len('abc')\n${t}`, /lua\/demo\.lua:1:1: 'string' is read while the library loads/],
    ['global read by a function called while the library loads', 'lua/demo.lua', (t) => `local function count(...) return select('#', ...) end\nlocal N = count(1, 2)\n${t}`, /lua\/demo\.lua:1:1: 'select' is read while the library loads/],
    ['free global name', 'lua/demo.lua', (t) => t.replace("return ok('0')", "return okk('0')"), /lua\/demo\.lua:11:1: free name 'okk'/],
    ['write before the write-phase marker', 'lua/demo.lua', (t) => t.replace("else return ok(library_version()) end", "else redis.call('HSET', K.core, 'x', '1') return ok(library_version()) end"), /lua\/demo\.lua:4:1: ff_touch: redis\.call\('HSET'\) comes before its '-- write phase' marker/],
    ['helper that writes, before the write-phase marker', 'lua/demo.lua', (t) => `local function stamp(key) redis.call('HSET', key, 'x', '1') end\n${t.replace("else return ok(library_version()) end", "else stamp(K.core) return ok(library_version()) end")}`, /lua\/demo\.lua:5:1: ff_touch: stamp\(…\), which writes, comes before its '-- write phase' marker/],
    ['error reply after the write-phase marker', 'lua/demo.lua', (t) => t.replace(TOUCH_BODY, PHASED('  -- write phase\n  redis.call(\'HSET\', K.core, \'x\', \'1\')\n')), /lua\/demo\.lua:7:1: ff_touch: error reply 'not_found' after its '-- write phase' marker/],
    ['error reply after a nested write that falls through', 'lua/demo.lua', (t) => t.replace(TOUCH_BODY, PHASED('  if A.execution_id == \'x\' then\n    -- write phase\n    redis.call(\'HSET\', K.core, \'x\', \'1\')\n  end\n')), /lua\/demo\.lua:9:1: ff_touch: error reply 'not_found' after its '-- write phase' marker/],
    ['error-replying helper after the write-phase marker', 'lua/demo.lua', (t) => `local function missing(key) if redis.call('EXISTS', key) == 0 then return { 0, 'not_found' } end end\n${t.replace(TOUCH_BODY, "if A.ttl_ms == nil then return { 0, 'invalid_input', 'ttl_ms is missing' } end\n  -- write phase\n  redis.call('HSET', K.core, 'x', '1')\n  local gone = missing(K.core)\n  return gone or ok(library_version())")}`, /lua\/demo\.lua:8:1: ff_touch: missing\(…\) can reply error 'not_found' after its '-- write phase' marker/],
    ['hand ARGV parser in a body', 'lua/demo.lua', (t) => t.replace('if A.ttl_ms == nil then', 'if tonumber(A.ttl_ms) == nil then'), /lua\/demo\.lua:4:1: ff_touch: tonumber\(…\) parses an ARGV-derived value by hand: declare the slot's type and rule in the spec/],
    ['hand ARGV parser in a helper given an ARGV value', 'lua/demo.lua', (t) => `local function ms(text)\n  return parse_int(text)\nend\n${t.replace('if A.ttl_ms == nil then', 'local ttl = A.ttl_ms\n  if ms(ttl) == nil then')}`, /lua\/demo\.lua:2:1: ff_touch: parse_int\(…\) parses an ARGV-derived value by hand/],
    ['tail slot read by its index', 'lua/demo.lua', (t) => t.replace('at_ms = args.at_ms', 'at_ms = args[3]'), /ff_budget_info: A\.at_ms reads args\[3\], expected args\.at_ms \(the guard places a list and the slots after it\)/],
    ['ARGV read by a computed index', 'lua/demo.lua', (t) => t.replace("return ok('0')", "return ok(args[2 + 2 * #A.limits])"), /lua\/demo\.lua:\d+:1: ff_budget_info reads ARGV by a computed index/],
    ['helper reading ARGV by a computed index', 'lua/demo.lua', (t) => `local function second(list)\n  return list[1 + #list]\nend\n${t.replace("return ok('0')", 'return ok(second(args))')}`, /lua\/demo\.lua:2:1: ff_budget_info: second reads ARGV by a computed index/],
    ['two lists in one function', 'spec/demo.yaml', (t) => t.replace('      - { name: at_ms, type: timestampMs, optional: true }\n', '      - { name: at_ms, type: timestampMs, optional: true }\n      - { name: more, type: list, of: string }\n'), /ff_budget_info: 'more': one list or group per function/],
    ['uncounted list before another slot', 'spec/demo.yaml', (t) => t.replace('        layout: columns\n        count: prefix', '        layout: columns\n        count: none'), /ff_budget_info: 'limits': an uncounted list takes the rest of ARGV and must be last/],
    ['version not found', 'lua/version.lua', (t) => t.replace("return '1'", 'return 1'), /version\.lua must contain exactly one return/],
  ];

  it.each(cases.filter(([name]) => name !== 'duplicate function across modules'))('%s', (_name, file, edit, expected) => {
    const failure = (() => {
      try {
        return failWith(file, edit).message;
      } catch (error) {
        return (error as Error).message;
      }
    })();
    expect(failure).toMatch(expected);
  });

  it('duplicate function across modules', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ff-spec-'));
    dirs.push(dir);
    cpSync(fixture, dir, { recursive: true });
    writeFileSync(join(dir, 'spec', 'other.yaml'), readFileSync(join(dir, 'spec', 'demo.yaml'), 'utf8').replace('module: demo', 'module: other'));
    expect(() => run(dir)).toThrow(/spec\/other\.yaml:4:\d+: ff_touch: duplicate function name \(also declared in demo\.yaml\)/);
  });

  it('accepts a write then a refusal the spec declares in writes_on_error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ff-spec-'));
    dirs.push(dir);
    cpSync(fixture, dir, { recursive: true });
    const lua = join(dir, 'lua', 'demo.lua');
    writeFileSync(lua, readFileSync(lua, 'utf8').replace(TOUCH_BODY, "if A.ttl_ms == nil then return { 0, 'invalid_input', 'ttl_ms is missing' } end\n  if redis.call('EXISTS', K.core) == 0 then\n    redis.call('HSET', K.lane, 'x', '1')\n    return { 0, 'not_found' }\n  end\n  -- write phase\n  redis.call('HSET', K.core, 'x', '1')\n  return ok(library_version())"));
    expect(() => run(dir)).toThrow(/ff_touch: redis\.call\('HSET'\) comes before its '-- write phase' marker/);
    const spec = join(dir, 'spec', 'demo.yaml');
    writeFileSync(spec, readFileSync(spec, 'utf8').replace('    errors: [not_found, invalid_input]\n', '    errors: [not_found, invalid_input]\n    writes_on_error: [not_found]\n'));
    expect(() => run(dir)).not.toThrow();
  });

  it('writes nothing when the spec is bad', async () => {
    const { runCodegen } = await import('../generator/cli.js');
    expect(typeof runCodegen).toBe('function');
  });
});

describe('version bump rule', async () => {
  const { checkVersionBump } = await import('../generator/version-guard.js');
  const stamp = (version: string, entries: Record<string, string>) => ({ version, signatures: new Map(Object.entries(entries)) });
  it('refuses a changed or removed signature under the same version, and accepts a bump or an addition', () => {
    expect(checkVersionBump(stamp('6', { ff_a: '1', ff_b: '2' }), stamp('6', { ff_a: '1', ff_b: '3' }))).toEqual([
      expect.objectContaining({ file: 'lua/version.lua', message: expect.stringContaining('ff_b changed or was removed') }),
    ]);
    expect(checkVersionBump(stamp('6', { ff_a: '1', ff_b: '2' }), stamp('6', { ff_a: '1' }))).toHaveLength(1);
    expect(checkVersionBump(stamp('6', { ff_a: '1' }), stamp('7', { ff_a: '9' }))).toEqual([]);
    expect(checkVersionBump(stamp('6', { ff_a: '1' }), stamp('6', { ff_a: '1', ff_new: '5' }))).toEqual([]);
    expect(checkVersionBump(undefined, stamp('6', { ff_a: '1' }))).toEqual([]);
  });

  it('changes a function\'s signature hash when an ARGV slot is added', async () => {
    const { parseStamp } = await import('../generator/version-guard.js');
    const before = parseStamp(run(fixture).get(STAMP_PATH)!);
    const dir = mkdtempSync(join(tmpdir(), 'ff-spec-'));
    cpSync(fixture, dir, { recursive: true });
    const path = join(dir, 'spec', 'demo.yaml');
    writeFileSync(path, readFileSync(path, 'utf8').replace('count: prefix }\n', 'count: prefix }\n      - { name: marker2, type: constant, value: "v2" }\n'));
    const lua = join(dir, 'lua', 'demo.lua');
    writeFileSync(lua, readFileSync(lua, 'utf8').replace('edge_ids = args.edge_ids }', 'edge_ids = args.edge_ids, marker2 = args.marker2 }'));
    const after = parseStamp(run(dir).get(STAMP_PATH)!);
    rmSync(dir, { recursive: true, force: true });
    expect(after.signatures.get('ff_touch')).not.toBe(before.signatures.get('ff_touch'));
    expect(after.signatures.get('ff_budget_info')).toBe(before.signatures.get('ff_budget_info'));
  });
});
