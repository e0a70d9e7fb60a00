#!/usr/bin/env node
// `ff-script`: the command line for authors (codegen, check) and operators (load, version,
// functions, rotate-secret, doctor, inspect, lanes). Exit codes: 0 success, 1 failure, 2 usage error.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FUNCTION_NAMES, LIBRARY_VERSION } from '../generated/library.js';
import { loadedVersion, registeredFunctions } from '../runtime/loader.js';
import { rotateWaitpointSecretEverywhere } from '../operations/waitpoints.js';
import { SERVER_HELP, serverOptions as server, UsageError, withClient } from './connection.js';
import { engineCommand } from './engine.js';
import { doctorCommand } from './doctor.js';
import { inspectCommand } from './inspect.js';
import { lanesCommand } from './lanes.js';

interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly options: NonNullable<ParseArgsConfig['options']>;
  /** Set by commands that take positional arguments (e.g. an execution id). */
  readonly positionals?: boolean;
  run(values: Record<string, string | boolean | undefined>, positionals: readonly string[]): Promise<number>;
}

const commands: Record<string, Command> = {
  codegen: {
    summary: 'regenerate generated/ and docs/reference/ from spec/ and lua/ (in a source checkout)',
    usage: 'ff-script codegen [--strict]   (run in the repository root)\n  --strict      also fail on spec functions not yet registered in lua/',
    options: { strict: { type: 'boolean', default: false } },
    async run(values) {
      const { runCodegen } = await import('../generator/cli.js').catch(() => {
        throw new Error('codegen needs a source checkout of ff-script with its dev dependencies (npm ci)');
      });
      const { written, unchanged } = runCodegen(process.cwd(), Boolean(values.strict));
      console.log(`codegen: ${written.length} file(s) written, ${unchanged.length} unchanged`);
      return 0;
    },
  },
  check: {
    summary: 'check spec/ and lua/ against each other without writing anything',
    usage: 'ff-script check',
    options: {},
    async run() {
      const { checkSources } = await import('../generator/cli.js').catch(() => {
        throw new Error('check needs a source checkout of ff-script with its dev dependencies (npm ci)');
      });
      const stale = checkSources(process.cwd());
      if (stale.length > 0) {
        console.error(`spec and Lua agree, but these generated files are stale (run codegen):\n  ${stale.join('\n  ')}`);
        return 1;
      }
      console.log(`ok: ${FUNCTION_NAMES.length} functions; spec, Lua and generated code agree`);
      return 0;
    },
  },
  load: {
    summary: 'ensure the library is loaded at this package\'s version (every primary of a cluster)',
    usage: `ff-script load [--url URL] [--cluster]\n${SERVER_HELP}`,
    options: server,
    async run(values) {
      const statuses = await withClient(values, (client) => client.ensureLibrary());
      statuses.forEach((s, i) => console.log(`primary ${i + 1}: ${s.before ?? '(absent)'} → ${s.after}${s.loaded ? ' (loaded)' : ' (already current)'}`));
      return 0;
    },
  },
  version: {
    summary: 'print the loaded library version and this package\'s',
    usage: `ff-script version [--url URL] [--cluster]\n${SERVER_HELP}`,
    options: server,
    async run(values) {
      const versions = await withClient(values, async (client) => Promise.all((await client.transport.primaries()).map((p) => loadedVersion(p))));
      console.log(`package: ${LIBRARY_VERSION}`);
      versions.forEach((v, i) => console.log(`server ${i + 1}: ${v ?? '(not loaded)'}`));
      return versions.every((v) => v === LIBRARY_VERSION) ? 0 : 1;
    },
  },
  functions: {
    summary: 'compare the functions the loaded library registers with those the spec declares',
    usage: `ff-script functions [--url URL] [--cluster]\n${SERVER_HELP}`,
    options: server,
    async run(values) {
      const loaded = await withClient(values, async (client) => {
        const [primary] = await client.transport.primaries();
        return registeredFunctions(primary!);
      });
      const expected = new Set<string>(FUNCTION_NAMES);
      const missing = [...expected].filter((n) => !loaded.has(n));
      const extra = [...loaded].filter((n) => !expected.has(n));
      for (const name of [...expected].sort()) console.log(`${loaded.has(name) ? 'ok     ' : 'MISSING'} ${name}`);
      for (const name of extra.sort()) console.log(`EXTRA   ${name}`);
      console.log(`${expected.size - missing.length}/${expected.size} expected functions loaded${extra.length ? `, ${extra.length} unexpected` : ''}`);
      return missing.length === 0 && extra.length === 0 ? 0 : 1;
    },
  },
  'rotate-secret': {
    summary: 'rotate the waitpoint HMAC secret on every flow partition',
    usage: `ff-script rotate-secret --kid KID --secret-hex HEX [--grace-ms MS] [--partitions N] [--url URL] [--cluster]\n  --kid KID          new key id (no ':')\n  --secret-hex HEX   new secret, even-length hex\n  --grace-ms MS      how long tokens of the old kid stay valid (default 86400000)\n  --partitions N     number of flow partitions (default 256)\n${SERVER_HELP}`,
    options: { ...server, kid: { type: 'string' }, 'secret-hex': { type: 'string' }, 'grace-ms': { type: 'string', default: '86400000' }, partitions: { type: 'string', default: '256' } },
    async run(values) {
      if (!values.kid || !values['secret-hex']) throw new UsageError('--kid and --secret-hex are required');
      const graceMs = Number(values['grace-ms']);
      const partitions = Number(values.partitions);
      if (!Number.isSafeInteger(graceMs) || graceMs < 0) throw new UsageError('--grace-ms must be a non-negative integer');
      if (!Number.isSafeInteger(partitions) || partitions < 1) throw new UsageError('--partitions must be a positive integer');
      const partitionConfig = { numFlowPartitions: partitions, numBudgetPartitions: 32, numQuotaPartitions: 32 };
      return withClient(
        values,
        async (client) => {
          const report = await rotateWaitpointSecretEverywhere(client, { kid: String(values.kid), secretHex: String(values['secret-hex']), graceMs });
          // The secret itself is never printed.
          console.log(`kid ${report.newKid}: rotated on ${report.rotated.length}, already current on ${report.noop.length}, failed on ${report.failed.length} partition(s)`);
          for (const failure of report.results) {
            if (!failure.ok) console.error(`partition ${failure.partition}: ${failure.error instanceof Error ? failure.error.message : String(failure.error)}`);
          }
          return report.failed.length === 0 ? 0 : 1;
        },
        { partitions: partitionConfig },
      );
    },
  },
  engine: engineCommand,
  doctor: doctorCommand,
  inspect: inspectCommand,
  lanes: lanesCommand,
};


function help(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return ['usage: ff-script <command> [options]', '', 'commands:', ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`), '', "run 'ff-script <command> --help' for a command's options"].join('\n');
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    console.error(`ff-script: unknown command '${name}'\n\n${help()}`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({ args: [...rest], options: { ...command.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: command.positionals === true });
    if (values.help) {
      console.log(`${command.summary}\n\nusage: ${command.usage}`);
      return 0;
    }
    return await command.run(values as Record<string, string | boolean | undefined>, positionals);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`ff-script ${name}: ${(error as Error).message}\n\nusage: ${command.usage}`);
      return 2;
    }
    console.error(`ff-script ${name}: ${(error as Error).message}`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
