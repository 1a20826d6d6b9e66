import { describe, expect, it } from 'vitest'

import { createSseParser, type SseEvent } from './sse'

function parse(...chunks: string[]): { events: SseEvent[]; retry: number[] } {
  const events: SseEvent[] = []
  const retry: number[] = []
  const parser = createSseParser((e) => events.push(e), (ms) => retry.push(ms))
  for (const c of chunks) parser.push(c)
  return { events, retry }
}

describe('createSseParser', () => {
  it('parses events with ids, names and JSON data', () => {
    const { events } = parse('id: a-1\nevent: version\ndata: {"service":"stt"}\n\n')
    expect(events).toEqual([{ id: 'a-1', event: 'version', data: '{"service":"stt"}' }])
  })

  it('joins events split across chunks and multi-line data', () => {
    const { events } = parse('event: x\nda', 'ta: one\ndata: two\n', '\n')
    expect(events).toEqual([{ id: undefined, event: 'x', data: 'one\ntwo' }])
  })

  it('ignores comments, reads retry, and skips events without data', () => {
    const { events, retry } = parse('retry: 2000\n\n: keep-alive\n\nevent: ready\ndata: {}\n\n')
    expect(retry).toEqual([2000])
    expect(events.map((e) => e.event)).toEqual(['ready'])
  })

  it('accepts CRLF line ends', () => {
    const { events } = parse('id: b-2\r\nevent: applied\r\ndata: {}\r\n\r\n')
    expect(events).toEqual([{ id: 'b-2', event: 'applied', data: '{}' }])
  })
})
