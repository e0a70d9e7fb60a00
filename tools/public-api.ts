// The public surface of the package: every name each entry point (package.json "exports")
// exports, with what kind of thing it is, one per line. api/public-api.txt holds the
// approved surface; test/public-api.test.ts fails when they differ, so a change to the
// surface is made on purpose: `npm run api:update` rewrites the file, and the diff is reviewed.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Node, Project } from 'ts-morph';

/** Each subpath of the package and the source file behind it. */
export const ENTRY_POINTS: ReadonlyArray<readonly [subpath: string, source: string]> = [
  ['ff-script', 'index.ts'],
  ['ff-script/glide', 'runtime/glide.ts'],
  ['ff-script/otel', 'runtime/otel.ts'],
  ['ff-script/transport', 'transport.ts'],
];

export const REPORT_PATH = 'api/public-api.txt';

function kindOf(node: Node): string {
  if (Node.isClassDeclaration(node)) return 'class';
  if (Node.isFunctionDeclaration(node)) return 'function';
  if (Node.isInterfaceDeclaration(node)) return 'interface';
  if (Node.isTypeAliasDeclaration(node)) return 'type';
  if (Node.isEnumDeclaration(node)) return 'enum';
  if (Node.isVariableDeclaration(node)) return 'const';
  return node.getKindName();
}

export function publicApiReport(root: string): string {
  const project = new Project({ tsConfigFilePath: join(root, 'tsconfig.json'), skipAddingFilesFromTsConfig: true });
  const sections = ENTRY_POINTS.map(([subpath, source]) => {
    const file = project.addSourceFileAtPath(join(root, source));
    project.resolveSourceFileDependencies();
    const lines = [...file.getExportedDeclarations()].map(([name, declarations]) => {
      const kinds = [...new Set(declarations.map(kindOf))].sort().join(' + ');
      return `${name}: ${kinds}`;
    });
    return [`# ${subpath}`, ...lines.sort()].join('\n');
  });
  return [
    '# The public API of ff-script: every exported name per entry point, and its kind.',
    '# Checked by test/public-api.test.ts. Change it on purpose: `npm run api:update`.',
    '',
    sections.join('\n\n'),
    '',
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  writeFileSync(join(root, REPORT_PATH), publicApiReport(root));
  console.log(`api: wrote ${REPORT_PATH}`);
}
