// The README's worker example is examples/worker.ts: the code block in README.md must be that
// file's code, and the file runs (on a server of its own, since it uses a fixed lane name).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../examples/worker.js';
import { startServer } from '../tools/local-server.js';

const root = join(import.meta.dirname, '..');

describe('README worker example', () => {
  it('is the code of examples/worker.ts', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### Workers'));
    const block = /```ts\n([\s\S]*?)```/.exec(section)![1]!;
    const example = readFileSync(join(root, 'examples', 'worker.ts'), 'utf8');
    const body = example.split('// --- README ---\n')[1]!.split('  // --- end README ---')[0]!;
    const dedented = body.split('\n').map((line) => (line.startsWith('  ') ? line.slice(2) : line)).join('\n').trimEnd();
    expect(block.split('\n').slice(2).join('\n').trimEnd()).toBe(dedented);
  });

  it('runs: the execution completes with the handler result', async () => {
    const server = await startServer();
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      const outcome = await main(server.url);
      expect(outcome).toMatchObject({ publicState: 'completed', resultJson: { sent: 'a@example.com', attempt: 0 } });
      expect(log).toHaveBeenCalledWith('completed', { sent: 'a@example.com', attempt: 0 });
    } finally {
      log.mockRestore();
      await server.stop();
    }
  });
});
