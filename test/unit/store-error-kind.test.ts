import { describe, expect, it } from 'vitest';
import { statusKind, StoreError } from '../../src/errors.js';

describe('the kind of a store failure: one status table for the lean read paths and the SDKs', () => {
  const table: [number, string | undefined][] = [
    [403, 'access_denied'],
    [404, undefined],
    [409, undefined],
    [412, 'precondition_failed'],
    [416, 'range_not_satisfiable'],
    [429, 'throttled'],
    [500, 'server_error'],
    [502, 'server_error'],
    [503, 'throttled'],
    [504, 'server_error'],
  ];

  it.each(table)('status %i is %s', (status, kind) => {
    expect(statusKind(status)).toBe(kind);
  });

  it.each(table)('an SDK error carrying status %i gets the same kind (or other)', (status, kind) => {
    const sdk = Object.assign(new Error('UnknownError'), { name: 'UnknownError', $metadata: { httpStatusCode: status } });
    expect(new StoreError('s', 'get', sdk).kind).toBe(kind ?? 'other');
    const azure = Object.assign(new Error('RestError'), { name: 'RestError', statusCode: status });
    expect(new StoreError('s', 'get', azure).kind).toBe(kind ?? 'other');
  });

  it('reads network failures and deadlines before any status', () => {
    expect(new StoreError('s', 'get', Object.assign(new Error('x'), { code: 'ECONNREFUSED', statusCode: 503 })).kind).toBe('network');
    expect(new StoreError('s', 'get', Object.assign(new Error('x'), { name: 'TimeoutError' })).kind).toBe('timeout');
  });
});
