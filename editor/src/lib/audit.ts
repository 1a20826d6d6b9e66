// The audit view's filters as the query of GET /api/v1/audit (outcome is filtered here:
// the API has no such parameter).
import type { AuditEntry } from '@/api/types'

export interface AuditFilters {
  service: string
  actor: string
  action: string
  outcome: '' | 'ok' | 'refused'
  /** A ``datetime-local`` value (the browser's local time), or ''. */
  since: string
  limit: number
}

export const NO_FILTERS: AuditFilters = { service: '', actor: '', action: '', outcome: '', since: '', limit: 100 }

/** The query string for the API; ``since`` is sent as UTC ISO 8601. */
export function auditQuery(f: AuditFilters): string {
  const q = new URLSearchParams()
  if (f.service) q.set('service', f.service)
  if (f.actor.trim()) q.set('actor', f.actor.trim())
  if (f.action.trim()) q.set('action', f.action.trim())
  if (f.since) {
    const moment = new Date(f.since)
    if (!Number.isNaN(moment.getTime())) q.set('since', moment.toISOString())
  }
  q.set('limit', String(Math.min(1000, Math.max(1, Math.trunc(f.limit) || 100))))
  return q.toString()
}

export function byOutcome(entries: AuditEntry[], outcome: AuditFilters['outcome']): AuditEntry[] {
  return outcome ? entries.filter((e) => e.outcome === outcome) : entries
}
