// The repository's own spec and Lua: the strict static check passes (every spec function is
// registered, every registered function has a spec, K/A tables and KEYS/ARGV counts agree),
// and generated/ plus docs/reference/ are exactly what codegen makes from them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate } from '../generator/codegen.js';

const root = join(import.meta.dirname, '..');

describe('spec, Lua and generated code agree', () => {
  const files = generate({ specDir: join(root, 'spec'), luaDir: join(root, 'lua'), displayRoot: root, strict: true });

  it('generated files on disk match codegen output', () => {
    const stale = [...files].filter(([path, content]) => !existsSync(join(root, path)) || readFileSync(join(root, path), 'utf8') !== content).map(([path]) => path);
    expect(stale, 'run `npm run codegen`').toEqual([]);
  });
});
