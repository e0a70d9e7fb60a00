// Case 6: the cost of the tooling: wall time of `npm run codegen` on the full spec (spawned,
// as a developer runs it), the bundled library's size, and FUNCTION LOAD REPLACE time.
import { spawn } from 'node:child_process';
import { FUNCTION_NAMES, LIBRARY_SOURCE } from '../../generated/library.js';
import { messageOf, type Case, type Context, type Row } from '../context.js';
import { median, rounds, timed, type Plan } from '../measure.js';

function runCodegen(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', '--silent', 'codegen'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`codegen exited ${code}: ${output.trim().split('\n').slice(-3).join(' | ')}`))));
  });
}

export const tooling: Case = {
  name: '6 tooling',
  async run(ctx: Context): Promise<Row[]> {
    const rows: Row[] = [];
    // A spawned codegen takes seconds: the quick run times a single one.
    const codegenPlan: Plan = ctx.quick ? { warmups: 0, rounds: 1 } : ctx.plan;
    try {
      const times = await rounds(codegenPlan, () => timed(runCodegen));
      rows.push({ case: this.name, measurement: '`npm run codegen`, full spec (wall time)', value: median(times), unit: 'ms', note: ctx.quick ? 'quick: one run' : undefined, rounds: times });
    } catch (error) {
      rows.push({ case: this.name, measurement: '`npm run codegen`', value: undefined, unit: 'ms', note: `failed: ${messageOf(error)}` });
    }

    const bytes = Buffer.byteLength(LIBRARY_SOURCE, 'utf8');
    rows.push({ case: this.name, measurement: 'bundled library (LIBRARY_SOURCE)', value: bytes / 1024, unit: 'KiB', note: `${FUNCTION_NAMES.length} functions in spec/, ${ctx.loaded.size} registered by the loaded library` });

    const loads = await rounds(ctx.plan, () => timed(() => ctx.redis.call('FUNCTION', 'LOAD', 'REPLACE', LIBRARY_SOURCE)));
    rows.push({ case: this.name, measurement: 'FUNCTION LOAD REPLACE of the bundle', value: median(loads), unit: 'ms', rounds: loads });
    return rows;
  },
};
