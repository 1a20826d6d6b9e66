import { describe, expect, it } from 'vitest'

import { describePatch, pointerKeys, showValue } from './diff'

describe('pointerKeys', () => {
  it('decodes RFC 6901 escapes', () => {
    expect(pointerKeys('')).toEqual([])
    expect(pointerKeys('/a~1b/c~0d/0')).toEqual(['a/b', 'c~d', '0'])
    expect(() => pointerKeys('a')).toThrow()
  })
})

describe('describePatch', () => {
  const before = { rate: 16000, nested: { threshold: 0.5 }, tags: ['a', 'b'], api_key: '****' }

  it('gives before and after of each operation, by dotted field', () => {
    const rows = describePatch(
      [
        { op: 'replace', path: '/rate', value: 22050 },
        { op: 'replace', path: '/nested/threshold', value: 0.7 },
        { op: 'remove', path: '/tags/1' },
        { op: 'add', path: '/label', value: 'x' },
      ],
      before,
    )
    expect(rows).toEqual([
      { field: 'rate', kind: 'changed', before: 16000, after: 22050, secret: false },
      { field: 'nested.threshold', kind: 'changed', before: 0.5, after: 0.7, secret: false },
      { field: 'tags.1', kind: 'removed', before: 'b', after: undefined, secret: false },
      { field: 'label', kind: 'added', before: undefined, after: 'x', secret: false },
    ])
  })

  it('never shows a secret, only that it changed', () => {
    const [row] = describePatch([{ op: 'replace', path: '/api_key', value: '****', secret: 'changed' }], before)
    expect(row?.secret).toBe(true)
    expect(showValue(row?.after, row?.secret)).toBe('(secret changed)')
  })

  it('works without the starting document', () => {
    expect(describePatch([{ op: 'replace', path: '/rate', value: 1 }])[0]?.before).toBeUndefined()
    expect(showValue(undefined)).toBe('—')
    expect(showValue({ a: 1 })).toBe('{"a":1}')
  })
})
