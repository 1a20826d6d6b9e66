import { describe, expect, it } from 'vitest'

import type { JsonSchema } from '@/api/types'
import { makeValidator } from './validate'

const schema: JsonSchema = {
  $defs: { N: { type: 'object', properties: { t: { type: 'number', minimum: 0, maximum: 1 } }, additionalProperties: false } },
  type: 'object',
  additionalProperties: false,
  required: ['rate'],
  properties: {
    rate: { type: 'integer', minimum: 8000, maximum: 48000 },
    api_key: { type: 'string', minLength: 30, 'x-secret': true },
    nested: { $ref: '#/$defs/N' },
    language: { anyOf: [{ type: 'string', pattern: '^[a-z]{2,3}$' }, { type: 'null' }] },
  },
}

describe('makeValidator', () => {
  const validate = makeValidator(schema)

  it('accepts a valid document', () => {
    expect(validate({ rate: 16000, nested: { t: 0.5 }, language: null })).toEqual({})
  })

  it('reports each invalid field at its dotted path', () => {
    const errors = validate({ rate: 100, nested: { t: 2 }, language: 'English', extra: 1 })
    expect(Object.keys(errors).sort()).toEqual(['extra', 'language', 'nested.t', 'rate'])
    expect(errors.rate).toBe('must be >= 8000')
    expect(errors['nested.t']).toBe('must be <= 1')
  })

  it('reports a missing required field and a wrong type', () => {
    expect(validate({})).toEqual({ rate: expect.any(String) })
    expect(validate({ rate: '' }).rate).toBe('must be integer')
  })

  it('does not validate a kept (masked) secret', () => {
    expect(validate({ rate: 16000, api_key: '**********' })).toEqual({})
    expect(validate({ rate: 16000, api_key: 'short' }).api_key).toBeDefined()
  })
})
