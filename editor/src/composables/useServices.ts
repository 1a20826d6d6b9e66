// The service list with each service's fleet state (applied by N of M instances).
import { ref } from 'vue'

import type { Instance, Preset, ServiceSummary } from '@/api/types'
import { api } from './useApi'

export interface FleetState {
  applied: number
  total: number
  failing: number
}

export function fleetState(instances: Instance[]): FleetState {
  return {
    applied: instances.filter((i) => i.current && i.status === 'applied').length,
    total: instances.filter((i) => i.status !== 'offline').length,
    failing: instances.filter((i) => i.status === 'rejected' || i.status === 'failed').length,
  }
}

const services = ref<ServiceSummary[]>([])
const fleet = ref<Record<string, FleetState>>({})
const instances = ref<Record<string, Instance[]>>({})
const presets = ref<Preset[]>([])

async function refreshInstances(name: string): Promise<Instance[]> {
  const list = await api.get<Instance[]>(`api/v1/services/${encodeURIComponent(name)}/instances`)
  instances.value = { ...instances.value, [name]: list }
  fleet.value = { ...fleet.value, [name]: fleetState(list) }
  return list
}

async function refresh(): Promise<void> {
  services.value = await api.get<ServiceSummary[]>('api/v1/services')
  presets.value = await api.get<Preset[]>('api/v1/presets').catch(() => [])
  await Promise.all(services.value.map((s) => refreshInstances(s.name).catch(() => [])))
}

export function useServices() {
  return { services, fleet, instances, presets, refresh, refreshInstances }
}
