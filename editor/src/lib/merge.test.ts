import { describe, expect, it } from 'vitest'

import { resolveConflicts, threeWayMerge } from './merge'

const base = { rate: 16000, label: 'demo', api_key: '**********', nested: { threshold: 0.5 }, tags: ['a'] }

describe('threeWayMerge', () => {
  it('rebases edits of different fields without conflict', () => {
    const theirs = { ...base, rate: 22050 }
    const yours = { ...base, label: 'mine' }
    const r = threeWayMerge(base, theirs, yours)
    expect(r.conflicts).toEqual([])
    expect(r.merged).toEqual({ ...base, rate: 22050, label: 'mine' })
    expect(r.theirChanges).toEqual([['rate']])
    expect(r.yourChanges).toEqual([['label']])
  })

  it('merges nested objects key by key', () => {
    const b = { nested: { a: 1, b: 2 } }
    const r = threeWayMerge(b, { nested: { a: 9, b: 2 } }, { nested: { a: 1, b: 7 } })
    expect(r.conflicts).toEqual([])
    expect(r.merged).toEqual({ nested: { a: 9, b: 7 } })
  })

  it('reports a field both changed differently and keeps yours until chosen', () => {
    const r = threeWayMerge(base, { ...base, rate: 22050 }, { ...base, rate: 44100 })
    expect(r.conflicts).toEqual([{ path: ['rate'], base: 16000, theirs: 22050, yours: 44100 }])
    expect(r.merged.rate).toBe(44100)
    expect(resolveConflicts(r, {}).rate).toBe(44100)
    expect(resolveConflicts(r, { rate: 'theirs' }).rate).toBe(22050)
  })

  it('is no conflict when both made the same change', () => {
    const r = threeWayMerge(base, { ...base, label: 'x' }, { ...base, label: 'x' })
    expect(r.conflicts).toEqual([])
    expect(r.merged.label).toBe('x')
  })

  it('treats arrays as whole values', () => {
    const r = threeWayMerge(base, { ...base, tags: ['a', 'b'] }, { ...base, tags: ['c'] })
    expect(r.conflicts.map((c) => c.path)).toEqual([['tags']])
    expect(r.merged.tags).toEqual(['c'])
  })

  it('handles added and removed keys', () => {
    const b = { a: 1, b: 2 }
    const r = threeWayMerge(b, { a: 1 }, { a: 1, b: 2, c: 3 })
    expect(r.conflicts).toEqual([])
    expect(r.merged).toEqual({ a: 1, c: 3 })
  })

  it('conflicts on a removed key that you edited, and can take their removal', () => {
    const r = threeWayMerge({ a: 1, b: 2 }, { a: 1 }, { a: 1, b: 5 })
    expect(r.conflicts).toEqual([{ path: ['b'], base: 2, theirs: undefined, yours: 5 }])
    expect(resolveConflicts(r, { b: 'theirs' })).toEqual({ a: 1 })
  })

  it('never mutates its inputs', () => {
    const theirs = { ...base, nested: { threshold: 0.9 } }
    const yours = { ...base, rate: 8000 }
    const snapshot = JSON.stringify([base, theirs, yours])
    const r = threeWayMerge(base, theirs, yours)
    ;(r.merged.nested as { threshold: number }).threshold = 0
    expect(JSON.stringify([base, theirs, yours])).toBe(snapshot)
  })

  it('keeps a masked secret (the server keeps the stored one) unless you replaced it', () => {
    expect(threeWayMerge(base, base, base).merged.api_key).toBe('**********')
    expect(threeWayMerge(base, base, { ...base, api_key: 'new' }).merged.api_key).toBe('new')
  })
})
