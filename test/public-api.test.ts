// The public surface is chosen on purpose: the names the package's entry points export must
// be exactly those recorded in api/public-api.txt.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPORT_PATH, publicApiReport } from '../tools/public-api.js';

const root = join(import.meta.dirname, '..');

describe('public API', () => {
  it('matches api/public-api.txt', { timeout: 60_000 }, () => {
    const recorded = readFileSync(join(root, REPORT_PATH), 'utf8');
    expect(
      publicApiReport(root),
      'the exported names changed: if that is intended, run `npm run api:update` and commit api/public-api.txt',
    ).toBe(recorded);
  });

  it('keeps the reply decoders, argument encoders and envelope reader internal', () => {
    const main = readFileSync(join(root, REPORT_PATH), 'utf8').split('\n\n')[1]!;
    for (const name of ['fieldParsed', 'readEnvelope', 'sendCommand', 'encodeText', 'fieldText', 'classifyTransportError']) {
      expect(main).not.toMatch(new RegExp(`^${name}:`, 'm'));
    }
  });
});
