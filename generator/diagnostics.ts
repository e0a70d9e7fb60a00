// What the generator reports: a problem at a file, line and column of spec/ or lua/, the
// error that carries all of them, and the parsed YAML file that can say where any of its
// nodes is.
import { LineCounter, isMap, parseDocument, type Document, type Node } from 'yaml';

export interface SpecProblem {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

export class SpecError extends Error {
  constructor(readonly problems: readonly SpecProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'SpecError';
  }
}

export function formatProblem(problem: SpecProblem): string {
  return `${problem.file}:${problem.line}:${problem.column}: ${problem.message}`;
}

/** A parsed YAML file that can say where any path inside it is. */
export class SourceFile {
  readonly doc: Document.Parsed;
  private readonly lines = new LineCounter();
  constructor(
    readonly file: string,
    text: string,
  ) {
    this.doc = parseDocument(text, { lineCounter: this.lines, uniqueKeys: true, prettyErrors: false });
  }
  /** Position of the node at `path` (or of its nearest existing ancestor). */
  at(path: readonly (string | number)[]): { line: number; column: number } {
    for (let depth = path.length; depth >= 0; depth--) {
      const node = this.doc.getIn(path.slice(0, depth), true) as Node | undefined;
      const offset = node?.range?.[0] ?? (depth === 0 ? 0 : undefined);
      if (offset !== undefined) {
        const { line, col } = this.lines.linePos(offset);
        return { line, column: col };
      }
    }
    return { line: 1, column: 1 };
  }
  /** Position of a mapping key (better than its value for naming an entry). */
  keyAt(path: readonly (string | number)[]): { line: number; column: number } {
    const parent = this.doc.getIn(path.slice(0, -1), true);
    if (isMap(parent)) {
      const pair = parent.items.find((item) => (item.key as { value?: unknown } | null)?.value === path[path.length - 1]);
      const offset = (pair?.key as Node | undefined)?.range?.[0];
      if (offset !== undefined) {
        const { line, col } = this.lines.linePos(offset);
        return { line, column: col };
      }
    }
    return this.at(path);
  }
  problem(path: readonly (string | number)[], message: string, onKey = false): SpecProblem {
    return { file: this.file, ...(onKey ? this.keyAt(path) : this.at(path)), message };
  }
}
