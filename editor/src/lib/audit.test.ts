import { describe, expect, it } from 'vitest'

import type { AuditEntry } from '@/api/types'
import { NO_FILTERS, auditQuery, byOutcome } from './audit'

describe('auditQuery', () => {
  it('sends only the filters that are set, since in UTC', () => {
    expect(auditQuery(NO_FILTERS)).toBe('limit=100')
    const since = '2026-11-29T20:00'
    const q = new URLSearchParams(auditQuery({ ...NO_FILTERS, service: 'stt', actor: ' alice ', action: 'put', since, limit: 5000 }))
    expect(q.get('service')).toBe('stt')
    expect(q.get('actor')).toBe('alice')
    expect(q.get('action')).toBe('put')
    expect(q.get('since')).toBe(new Date(since).toISOString())
    expect(q.get('limit')).toBe('1000')
  })

  it('drops an unreadable time rather than sending it', () => {
    expect(auditQuery({ ...NO_FILTERS, since: 'yesterday' })).toBe('limit=100')
  })
})

describe('byOutcome', () => {
  const entry = (id: number, outcome: AuditEntry['outcome']): AuditEntry => ({
    id, outcome, at: '', actor: 'a', action: 'put', service: null, version: null, request_id: null, reason: null, detail: {},
  })
  it('keeps every entry, or those of one outcome', () => {
    const all = [entry(1, 'ok'), entry(2, 'refused')]
    expect(byOutcome(all, '')).toHaveLength(2)
    expect(byOutcome(all, 'refused').map((e) => e.id)).toEqual([2])
  })
})
