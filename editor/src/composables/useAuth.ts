// The API token: kept in sessionStorage (per tab, gone with the tab) and handed to new tabs
// of the same origin over a BroadcastChannel, so opening a second tab needs no new login.
import { computed, ref } from 'vue'

import type { Role, Whoami } from '@/api/types'

const STORAGE_KEY = 'signed-config-token'
const CHANNEL = 'signed-config-auth'

type AuthMessage = { type: 'request' } | { type: 'token'; token: string } | { type: 'logout' }

const token = ref<string>(sessionStorage.getItem(STORAGE_KEY) ?? '')
const whoami = ref<Whoami | null>(null)
let channel: BroadcastChannel | null = null

function store(value: string): void {
  token.value = value
  if (value) sessionStorage.setItem(STORAGE_KEY, value)
  else sessionStorage.removeItem(STORAGE_KEY)
}

function openChannel(): void {
  if (channel || typeof BroadcastChannel === 'undefined') return
  channel = new BroadcastChannel(CHANNEL)
  channel.onmessage = (event: MessageEvent<AuthMessage>) => {
    const msg = event.data
    if (msg.type === 'request' && token.value) channel?.postMessage({ type: 'token', token: token.value })
    else if (msg.type === 'token' && !token.value) store(msg.token)
    else if (msg.type === 'logout') {
      store('')
      whoami.value = null
    }
  }
  if (!token.value) channel.postMessage({ type: 'request' } satisfies AuthMessage)
}

const RANK: Record<Role, number> = { viewer: 0, editor: 1, admin: 2 }

/** Whether ``scopes`` (null: all services) lets the token act on ``service``. */
export function scopeAllows(scopes: string[] | null | undefined, service: string): boolean {
  if (!scopes) return true
  return scopes.some((s) => s === '*' || s === service || (s.endsWith('*') && service.startsWith(s.slice(0, -1))))
}

export function roleAllows(role: Role | undefined, needed: Role): boolean {
  return role !== undefined && RANK[role] >= RANK[needed]
}

export function useAuth() {
  openChannel()
  return {
    token,
    whoami,
    loggedIn: computed(() => Boolean(token.value)),
    login(value: string) {
      store(value.trim())
      whoami.value = null
    },
    logout() {
      store('')
      whoami.value = null
      channel?.postMessage({ type: 'logout' } satisfies AuthMessage)
    },
    canWrite(service: string): boolean {
      return roleAllows(whoami.value?.role, 'editor') && scopeAllows(whoami.value?.scopes, service)
    },
  }
}
