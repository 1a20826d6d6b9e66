import { describe, expect, it } from 'vitest'

import type { JsonSchema } from '@/api/types'
import { fieldsOf, labelFor, labelsOf, secretPaths } from './schema'

// What pydantic writes for tests/manager/mgr_models.py's DemoConfig, plus titles and a nullable.
const schema: JsonSchema = {
  $defs: {
    DemoNested: {
      title: 'DemoNested',
      type: 'object',
      properties: { threshold: { type: 'number', minimum: 0, maximum: 1, title: 'Threshold' } },
    },
  },
  type: 'object',
  properties: {
    rate: { type: 'integer', minimum: 8000, maximum: 48000, title: 'Sample rate (Hz)' },
    api_key: { type: 'string', format: 'password', writeOnly: true, 'x-secret': true, title: 'Api Key' },
    nested: { $ref: '#/$defs/DemoNested' },
    language: { anyOf: [{ type: 'string', pattern: '^[a-z]{2,3}$' }, { type: 'null' }], title: 'Language' },
    device: { enum: ['cpu', 'cuda'], type: 'string', title: 'Device' },
    tags: { type: 'array', items: { type: 'string' } },
  },
}

describe('fieldsOf', () => {
  const fields = fieldsOf(schema)
  const byKey = Object.fromEntries(fields.map((f) => [f.key, f]))

  it('uses the schema titles as labels', () => {
    expect(byKey.rate?.label).toBe('Sample rate (Hz)')
    expect(byKey.tags?.label).toBe('Tags')
  })

  it('finds the kind of every field', () => {
    expect(fields.map((f) => [f.key, f.kind])).toEqual([
      ['rate', 'number'],
      ['api_key', 'secret'],
      ['nested', 'object'],
      ['language', 'string'],
      ['device', 'enum'],
      ['tags', 'json'],
    ])
    expect(byKey.rate?.integer).toBe(true)
    expect(byKey.language?.nullable).toBe(true)
    expect(byKey.device?.options).toEqual(['cpu', 'cuda'])
  })

  it('resolves $ref into nested fields with their paths', () => {
    expect(byKey.nested?.children.map((c) => c.path)).toEqual([['nested', 'threshold']])
    expect(byKey.nested?.label).toBe('Nested') // not the class name DemoNested
  })

  it('lists the secret paths', () => {
    expect([...secretPaths(fields)]).toEqual(['api_key'])
  })

  it('makes names readable when there is no title', () => {
    expect(labelFor('max_chunk_s', {})).toBe('Max chunk s')
  })
})

describe('labelsOf', () => {
  it('gives every field, nested ones included, its human label by dotted path', () => {
    const nested: JsonSchema = {
      type: 'object',
      properties: {
        chunk_duration_s: { type: 'number', title: 'Chunk length (s)' },
        vad: { type: 'object', title: 'Voice activity detection', properties: { threshold: { type: 'number', title: 'Threshold' } } },
      },
    }
    expect(labelsOf(fieldsOf(nested))).toEqual({
      chunk_duration_s: 'Chunk length (s)',
      vad: 'Voice activity detection',
      'vad.threshold': 'Voice activity detection › Threshold',
    })
  })
})
