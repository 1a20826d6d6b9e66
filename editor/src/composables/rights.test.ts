import { describe, expect, it } from 'vitest'

import type { SyncInstance } from '@/api/types'
import { roleAllows, scopeAllows } from './useAuth'
import { fleetFromSync } from './useServices'

describe('rights from whoami', () => {
  it('ranks roles', () => {
    expect(roleAllows('viewer', 'editor')).toBe(false)
    expect(roleAllows('editor', 'editor')).toBe(true)
    expect(roleAllows('admin', 'editor')).toBe(true)
    expect(roleAllows(undefined, 'viewer')).toBe(false)
  })

  it('reads scopes: null is every service, a trailing * is a prefix', () => {
    expect(scopeAllows(null, 'stt')).toBe(true)
    expect(scopeAllows([], 'stt')).toBe(false)
    expect(scopeAllows(['stt'], 'stt')).toBe(true)
    expect(scopeAllows(['stt'], 'orchestrator')).toBe(false)
    expect(scopeAllows(['st*'], 'stt')).toBe(true)
  })
})

describe('fleetFromSync', () => {
  const inst = (instance: string, state: SyncInstance['state'], extra: Partial<SyncInstance> = {}): SyncInstance => ({
    instance,
    state,
    status: 'applied',
    version: 1,
    epoch: 1,
    ...extra,
  })

  it('counts applied, failing, stale and fresh instances, and leaves offline ones out', () => {
    const fleet = fleetFromSync({
      epoch: 1,
      summary: {},
      services: [
        {
          service: 'stt',
          version: 1,
          epoch: 1,
          instances: [
            inst('a', 'in_sync', { freshness: 'fresh' }),
            inst('b', 'behind', { freshness: 'stale' }),
            inst('c', 'rejected'),
            inst('d', 'offline', { freshness: 'stale' }),
          ],
        },
      ],
    })
    expect(fleet.stt).toEqual({ applied: 1, total: 3, failing: 1, stale: 1, fresh: 1, forged: 0 })
  })

  it('counts forged instances when the manager reports them, and tolerates their absence', () => {
    const services = [
      {
        service: 'orchestrator',
        version: 2,
        epoch: 1,
        instances: [inst('x', 'in_sync', { forged: true, forged_reason: 'bad signature' }), inst('y', 'in_sync')],
      },
    ]
    expect(fleetFromSync({ epoch: 1, summary: { forged: 1 }, services }).orchestrator?.forged).toBe(1)
    expect(fleetFromSync({ epoch: 1, summary: {}, services: [{ ...services[0]!, instances: [inst('y', 'in_sync')] }] }).orchestrator?.forged).toBe(0)
  })
})
