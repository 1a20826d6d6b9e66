// Live events from GET /api/v1/events, read with fetch (EventSource cannot send the
// Authorization header), reconnecting with Last-Event-ID after a drop.
import { onBeforeUnmount, ref, watch } from 'vue'

import { createSseParser } from '@/lib/sse'
import { useAuth } from './useAuth'

export interface VersionEvent {
  service: string
  version: number
  epoch: number
  created_by: string
  change_id: string
}

export interface AppliedEvent {
  service: string
  instance: string
  status: string
  version: number | null
}

export interface EventHandlers {
  version?: (e: VersionEvent) => void
  applied?: (e: AppliedEvent) => void
  /** Missed events could not be replayed: reload everything shown. */
  reset?: () => void
}

export function useEvents(handlers: EventHandlers) {
  const { token } = useAuth()
  const connected = ref(false)
  let lastEventId: string | undefined
  let retryMs = 2000
  let controller: AbortController | null = null

  function dispatch(kind: string, data: string): void {
    if (kind === 'ready') connected.value = true
    else if (kind === 'reset') handlers.reset?.()
    else if (kind === 'version') handlers.version?.(JSON.parse(data) as VersionEvent)
    else if (kind === 'applied') handlers.applied?.(JSON.parse(data) as AppliedEvent)
  }

  async function run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        const headers: Record<string, string> = {
          Accept: 'text/event-stream',
          Authorization: `Bearer ${token.value}`,
        }
        if (lastEventId) headers['Last-Event-ID'] = lastEventId
        const resp = await fetch('api/v1/events', { headers, signal, cache: 'no-store' })
        if (resp.status === 401 || resp.status === 403) return
        if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`)
        const parser = createSseParser(
          (e) => {
            if (e.id !== undefined) lastEventId = e.id
            dispatch(e.event, e.data)
          },
          (ms) => (retryMs = ms),
        )
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader()
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          parser.push(value)
        }
      } catch {
        if (signal.aborted) return
      }
      connected.value = false
      await new Promise((r) => setTimeout(r, retryMs))
    }
  }

  function stop(): void {
    controller?.abort()
    controller = null
    connected.value = false
  }

  function start(): void {
    stop()
    if (!token.value) return
    controller = new AbortController()
    void run(controller.signal)
  }

  watch(token, start, { immediate: true })
  onBeforeUnmount(stop)
  return { connected }
}
