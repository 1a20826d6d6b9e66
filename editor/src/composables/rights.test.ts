import { describe, expect, it } from 'vitest'

import type { Instance } from '@/api/types'
import { roleAllows, scopeAllows } from './useAuth'
import { fleetState } from './useServices'

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

describe('fleetState', () => {
  const report = (instance: string, status: string, current: boolean): Instance => ({
    instance,
    status,
    current,
    version: 1,
    epoch: 1,
    reason: null,
    detail: null,
    time: null,
    received_at: 0,
  })

  it('counts instances on the current version, failing ones, and leaves offline out', () => {
    const state = fleetState([
      report('a', 'applied', true),
      report('b', 'applied', false),
      report('c', 'rejected', false),
      report('d', 'offline', false),
    ])
    expect(state).toEqual({ applied: 1, total: 3, failing: 1 })
  })
})
