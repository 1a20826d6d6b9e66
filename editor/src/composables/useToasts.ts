// Toast notifications for outcomes (saved, merged, failed...).
import { ref } from 'vue'

export type ToastKind = 'ok' | 'info' | 'error'

export interface Toast {
  id: number
  kind: ToastKind
  text: string
}

const toasts = ref<Toast[]>([])
let next = 1

export function useToasts() {
  function dismiss(id: number): void {
    toasts.value = toasts.value.filter((t) => t.id !== id)
  }
  function push(kind: ToastKind, text: string, ms = kind === 'error' ? 10000 : 5000): number {
    const id = next++
    toasts.value = [...toasts.value, { id, kind, text }]
    setTimeout(() => dismiss(id), ms)
    return id
  }
  return { toasts, push, dismiss }
}
