// A Server-Sent Events parser (the text/event-stream format) for streams read with fetch.

export interface SseEvent {
  id: string | undefined
  event: string
  data: string
}

/** Feed it text chunks as they arrive; it calls ``onEvent`` once per complete event. */
export function createSseParser(onEvent: (event: SseEvent) => void, onRetry?: (ms: number) => void) {
  let buffer = ''
  let data: string[] = []
  let event = ''
  let id: string | undefined

  function line(text: string): void {
    if (text === '') {
      if (data.length) onEvent({ id, event: event || 'message', data: data.join('\n') })
      data = []
      event = ''
      id = undefined
      return
    }
    if (text.startsWith(':')) return // comment (keep-alive)
    const colon = text.indexOf(':')
    const field = colon < 0 ? text : text.slice(0, colon)
    let value = colon < 0 ? '' : text.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') data.push(value)
    else if (field === 'event') event = value
    else if (field === 'id' && !value.includes('\0')) id = value
    else if (field === 'retry' && /^\d+$/.test(value)) onRetry?.(Number(value))
  }

  return {
    push(chunk: string): void {
      buffer += chunk
      const lines = buffer.split(/\r\n|\r|\n/)
      buffer = lines.pop() ?? ''
      for (const l of lines) line(l)
    },
  }
}
