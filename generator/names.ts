// The fixed naming rule from wire names to TypeScript names, so the two can never differ.

export function camel(snake: string): string {
  return snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function pascal(snake: string): string {
  const c = camel(snake);
  return c.charAt(0).toUpperCase() + c.slice(1);
}

/** `ff_claim_execution` → `claimExecution`. */
export function wrapperName(fn: string): string {
  return camel(fn.replace(/^ff_/, ''));
}

/** `ff_claim_execution` → `ClaimExecution`. */
export function typeBase(fn: string): string {
  return pascal(fn.replace(/^ff_/, ''));
}

export function quote(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

// Prose for a TSDoc block: a comment terminator inside it is escaped.
export function docLines(text: string): string {
  return text.replace(/\*\//g, '*\\/').trim();
}
