// Manager and broker health for the header, from GET /readyz (503 carries the same body).
import { onBeforeUnmount, onMounted, ref } from 'vue'

import type { Readiness } from '@/api/types'

export function useHealth(intervalMs = 5000) {
  const health = ref<Readiness | null>(null)
  const reachable = ref(true)
  let timer: ReturnType<typeof setInterval> | undefined

  async function refresh(): Promise<void> {
    try {
      const resp = await fetch('readyz', { headers: { Accept: 'application/json' } })
      health.value = (await resp.json()) as Readiness
      reachable.value = true
    } catch {
      reachable.value = false
    }
  }
  onMounted(() => {
    void refresh()
    timer = setInterval(() => void refresh(), intervalMs)
  })
  onBeforeUnmount(() => clearInterval(timer))
  return { health, reachable, refresh }
}
