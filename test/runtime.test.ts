// Runtime pieces that need no engine state: the reply envelope, error classification and
// request encoding rules.
import { describe, expect, it } from 'vitest';
import { classifyIoredisError as classifyTransportError } from '../runtime/ioredis.js';
import { ArgumentError, ReplyParseError, ScriptError, TransportError } from '../runtime/errors.js';
import { encodeCapabilities, encodeInteger, encodeJson, encodeText } from '../runtime/encode.js';
import { readEnvelope, readUntaggedEnvelope } from '../runtime/reply.js';
import { fieldStreamEntries } from '../runtime/decode.js';

describe('reply envelope', () => {
  it('reads RESP2 and RESP3 scalar shapes alike', () => {
    expect(readEnvelope('f', [1, 'OK', 'a', 7])).toEqual({ status: 'OK', fields: ['a', 7] });
    expect(readEnvelope('f', [1n, Buffer.from('DUPLICATE'), Buffer.from('x')])).toEqual({ status: 'DUPLICATE', fields: [Buffer.from('x')] });
    expect(readEnvelope('f', ['1', 'OK'])).toEqual({ status: 'OK', fields: [] });
  });

  it('turns failure replies into ScriptError with class and details', () => {
    const error = (() => {
      try {
        readEnvelope('ff_complete_execution', [0, 'execution_not_active', 'success', '3']);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ScriptError);
    expect(error).toMatchObject({ code: 'execution_not_active', errorClass: 'terminal', details: ['success', '3'], functionName: 'ff_complete_execution' });
    expect(() => readEnvelope('f', [0, 'capability_mismatch', 'gpu'])).toThrow(expect.objectContaining({ code: 'capability_mismatch', detail: 'gpu', retryable: true }));
  });

  it('splits a code with an embedded detail', () => {
    expect(() => readEnvelope('f', [0, 'already_member_of_different_flow:abc'])).toThrow(expect.objectContaining({ code: 'already_member_of_different_flow', detail: 'abc' }));
  });

  it('refuses unknown codes and malformed envelopes with ReplyParseError', () => {
    expect(() => readEnvelope('f', [0, 'no_such_code'])).toThrow(ReplyParseError);
    expect(() => readEnvelope('f', 'OK')).toThrow(ReplyParseError);
    expect(() => readEnvelope('f', [2, 'OK'])).toThrow(/first element is not 0 or 1/);
  });

  it('reads untagged replies, and the standard failure shape through them', () => {
    expect(readUntaggedEnvelope('f', ['RATE_EXCEEDED', '120'])).toEqual({ status: 'RATE_EXCEEDED', fields: ['120'] });
    expect(() => readUntaggedEnvelope('f', [0, 'invalid_input', 'x'])).toThrow(ScriptError);
  });

  it('reads stream entries with array or map pairs', () => {
    const entries = fieldStreamEntries('f', 'entries', [[['1-0', ['a', '1']], ['2-0', new Map([['b', '2']])]]], 0);
    expect(entries).toEqual([{ id: '1-0', fields: { a: '1' } }, { id: '2-0', fields: { b: '2' } }]);
  });
});

describe('transport error classification', () => {
  const replyError = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });
  it.each([
    ['TRYAGAIN Multiple keys request during rehashing of slot', 'try_again', true],
    ['LOADING Redis is loading the dataset in memory', 'busy_loading', true],
    ['CLUSTERDOWN The cluster is down', 'cluster_down', true],
    ['MOVED 3999 127.0.0.1:6381', 'moved', false],
    ['CROSSSLOT Keys in request don\'t hash to the same slot', 'cross_slot', false],
    ['NOPERM this user has no permissions', 'permission_denied', false],
    ['WRONGTYPE Operation against a key holding the wrong kind of value', 'extension_error', false],
    ['ERR unknown command', 'response_error', false],
  ])('%s → %s', (message, kind, retryable) => {
    const error = classifyTransportError(replyError(message));
    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ kind, retryable });
  });

  it('treats a lost reply as not retryable and an unsent command as retryable', () => {
    expect(classifyTransportError(new Error('Connection is closed.'))).toMatchObject({ kind: 'fatal_receive', retryable: false, notSent: false });
    expect(classifyTransportError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toMatchObject({ kind: 'io_error', retryable: true });
    expect(classifyTransportError(Object.assign(new Error('Reached the max retries per request limit'), { name: 'MaxRetriesPerRequestError' }))).toMatchObject({ kind: 'fatal_send', retryable: true });
    expect(classifyTransportError(new Error('Command timed out'))).toMatchObject({ kind: 'timeout', retryable: false });
  });
});

describe('argument encoding', () => {
  it('refuses values of the wrong kind, naming the argument', () => {
    expect(() => encodeInteger('f', 'ttl', 1.5)).toThrow(new ArgumentError('f', 'ttl', 'expected a safe integer, got 1.5'));
    expect(() => encodeInteger('f', 'ttl', 2 ** 53)).toThrow(ArgumentError);
    expect(() => encodeInteger('f', 'ttl', 0, 1)).toThrow(/must be >= 1/);
    expect(() => encodeText('f', 'ns', 'a{b}', { keySafe: true })).toThrow(/'\{' or '\}'/);
    expect(() => encodeJson('f', 'j', { big: 1n })).toThrow(/JSON/);
    expect(() => encodeJson('f', 'j', undefined)).toThrow(/JSON/);
  });

  it('sends capability sets sorted, de-duplicated and bounded', () => {
    expect(encodeCapabilities('f', 'caps', ['gpu', 'cuda', 'gpu'])).toBe('cuda,gpu');
    expect(() => encodeCapabilities('f', 'caps', ['a b'])).toThrow(/whitespace/);
    expect(() => encodeCapabilities('f', 'caps', Array.from({ length: 257 }, (_, i) => `c${i}`))).toThrow(/256/);
  });
});
