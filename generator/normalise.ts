// From the spec as declared (one FieldSpec bag per slot) to the shapes the emitters read:
// each argument once, as a scalar, list or group, with what happens when it is left out and
// its TypeScript type; each ARGV slot as what it sends. Run once, while loading.
import type { Arg, EncodeRules, EnumSpec, FieldSpec, Presence, ReplyField, ReplyFieldSpec, ScalarType, Slot } from './model.js';
import { camel, pascal } from './names.js';
import { tsType } from './types.js';

/** The ARGV slots that carry a caller value of their own (not a constant, `from` or `nowPlus`). */
function takesValue(slot: FieldSpec): boolean {
  return slot.type !== 'constant' && slot.from === undefined && slot.nowPlus === undefined;
}

export function normaliseArgs(params: readonly FieldSpec[], argv: readonly FieldSpec[], enums: readonly EnumSpec[] = []): Arg[] {
  return [...params, ...argv.filter(takesValue)].map((field) => toArg(field, enums));
}

/** The named enum type (generated/enums.ts) of a slot that takes all of a named enum's values; a subset stays inline. */
function enumTypeOf(field: FieldSpec, enums: readonly EnumSpec[]): string | undefined {
  const named = field.enum === undefined ? undefined : enums.find((e) => e.name === field.enum);
  if (!named || !field.values) return undefined;
  const whole = field.values.length === named.values.length && named.values.every((v) => field.values!.includes(v));
  return whole ? pascal(named.name) : undefined;
}

export function normaliseSlots(argv: readonly FieldSpec[]): Slot[] {
  return argv.map((slot): Slot => {
    const common = { name: slot.name, when: slot.when };
    if (slot.type === 'constant') return { ...common, kind: 'constant', value: slot.value ?? '' };
    if (slot.nowPlus !== undefined) return { ...common, kind: 'clockPlus', duration: slot.nowPlus };
    const arg = slot.from ?? slot.name;
    const countFirst = slot.count !== 'none';
    if (slot.type === 'list' && slot.from === undefined) return { ...common, kind: 'list', arg, countFirst };
    if (slot.type === 'group' && slot.from === undefined) return { ...common, kind: 'group', arg, countFirst, layout: slot.layout ?? 'columns' };
    return { ...common, kind: 'value', arg };
  });
}

function presence(field: FieldSpec): Presence {
  if (field.default !== undefined) return { kind: 'default', value: field.default };
  if (field.defaultFrom?.fn === 'now') return { kind: 'clock' };
  if (field.defaultFrom) return { kind: 'derived', fn: field.defaultFrom.fn, from: field.defaultFrom.arg ?? '' };
  return field.optional ? { kind: 'optional' } : { kind: 'required' };
}

function rules(field: FieldSpec): EncodeRules {
  return { min: field.min, max: field.max, nonEmpty: field.nonEmpty, maxBytes: field.maxBytes, values: field.values, shape: field.shape };
}

/** `readonly T[]`, parenthesised only when T is a union. */
export function listType(element: string): string {
  return element.includes('|') ? `readonly (${element})[]` : `readonly ${element}[]`;
}

function toArg(field: FieldSpec, enums: readonly EnumSpec[]): Arg {
  const common = { name: field.name, property: camel(field.name), doc: field.doc, presence: presence(field) };
  if (field.type === 'list') {
    const of: ScalarType = field.of ?? 'string';
    return { ...common, kind: 'list', of, rules: rules(field), maxItems: field.maxItems, tsType: listType(tsType(of, field.values)) };
  }
  if (field.type === 'group') {
    const members = (field.fields ?? []).map((member) => {
      const type = member.type as ScalarType;
      return { name: member.name, property: camel(member.name), type, rules: rules(member), tsType: tsType(type, member.values) };
    });
    const tsMembers = members.map((m) => `readonly ${m.property}: ${m.tsType}`).join('; ');
    return { ...common, kind: 'group', members, maxItems: field.maxItems, tsType: `readonly { ${tsMembers} }[]` };
  }
  const type = field.type as ScalarType;
  const enumType = type === 'enum' ? enumTypeOf(field, enums) : undefined;
  if (enumType !== undefined) return { ...common, kind: 'scalar', type, rules: rules(field), tsType: enumType, enumType };
  return { ...common, kind: 'scalar', type, rules: rules(field), tsType: tsType(type, field.values, field.shape) };
}

/** One sentence on what a left-out argument becomes, for TSDoc and the reference alike. */
export function presenceNote(arg: Arg): string | undefined {
  const p = arg.presence;
  switch (p.kind) {
    case 'required':
      return undefined;
    case 'optional':
      return arg.kind === 'scalar' ? 'Sent as the empty string when absent.' : 'Default: empty.';
    case 'default':
      return p.value === '' ? 'Default: the empty string.' : `Default: \`${String(p.value)}\`.`;
    case 'derived':
      return `Default: ${p.fn} of \`${camel(p.from)}\`.`;
    case 'clock':
      return 'Default: the client clock (`Date.now()`).';
  }
}

/** A declared reply field in its kind's shape; a shape that lacks what its kind needs is reported. */
export function normaliseReplyField(field: ReplyFieldSpec, problem: (message: string) => void): ReplyField {
  const common = { name: field.name, property: camel(field.name), optional: field.optional === true };
  switch (field.type) {
    case 'streamEntries':
      return { ...common, kind: 'streamEntries' };
    case 'list':
      if (!field.of) problem(`'${field.name}': a list needs 'of'`);
      return { ...common, kind: 'list', of: field.of ?? 'string', values: field.values };
    case 'group': {
      if (!field.fields) problem(`'${field.name}': a group needs 'fields'`);
      const members = (field.fields ?? []).map((member) => normaliseReplyField(member, problem));
      return { ...common, kind: 'group', members, countField: field.count === undefined || field.count === 'rest' ? undefined : field.count };
    }
    default:
      if (field.type === 'enum' && !field.values) problem(`'${field.name}': an enum needs 'values'`);
      return { ...common, kind: 'scalar', type: field.type, values: field.values };
  }
}
