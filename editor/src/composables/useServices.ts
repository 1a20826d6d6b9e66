// The service list with each service's fleet state: applied by N of M instances, failing,
// stale and forged instances (from GET /api/v1/sync, one request for every service).
import { ref } from 'vue'

import type { Instance, Preset, ServiceSummary, Sync } from '@/api/types'
import { api } from './useApi'

export interface FleetState {
  applied: number
  total: number
  failing: number
  /** Instances whose freshness record is stale (they may run an outdated config unknowingly). */
  stale: number
  /** Instances reporting freshness at all (the badge says fresh when all of them are fresh). */
  fresh: number
  /** Instances whose reports the manager found forged (absent from older managers: 0). */
  forged: number
}

/** Each service's fleet state from a /sync answer (offline and retired instances left out). */
export function fleetFromSync(sync: Sync): Record<string, FleetState> {
  const out: Record<string, FleetState> = {}
  for (const s of sync.services) {
    const live = s.instances.filter((i) => i.state !== 'offline' && i.state !== 'retired')
    out[s.service] = {
      applied: live.filter((i) => i.state === 'in_sync').length,
      total: live.length,
      failing: live.filter((i) => i.state === 'failed' || i.state === 'rejected').length,
      stale: live.filter((i) => i.freshness === 'stale').length,
      fresh: live.filter((i) => i.freshness === 'fresh').length,
      forged: s.instances.filter((i) => i.forged === true).length,
    }
  }
  return out
}

const services = ref<ServiceSummary[]>([])
const fleet = ref<Record<string, FleetState>>({})
const instances = ref<Record<string, Instance[]>>({})
const presets = ref<Preset[]>([])

let pending: Promise<void> | null = null
let again = false

/** Reload every badge (coalesced: calls while one is in flight cause one more, not many). */
function refreshFleet(): Promise<void> {
  if (pending) {
    again = true
    return pending
  }
  pending = (async () => {
    do {
      again = false
      fleet.value = fleetFromSync(await api.get<Sync>('api/v1/sync'))
    } while (again)
  })().finally(() => (pending = null))
  return pending
}

async function refreshInstances(name: string): Promise<Instance[]> {
  const list = await api.get<Instance[]>(`api/v1/services/${encodeURIComponent(name)}/instances`)
  instances.value = { ...instances.value, [name]: list }
  void refreshFleet().catch(() => undefined)
  return list
}

async function refresh(): Promise<void> {
  services.value = await api.get<ServiceSummary[]>('api/v1/services')
  presets.value = await api.get<Preset[]>('api/v1/presets').catch(() => [])
  await refreshFleet().catch(() => undefined)
}

export function useServices() {
  return { services, fleet, instances, presets, refresh, refreshFleet, refreshInstances }
}
