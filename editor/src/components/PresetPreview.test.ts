import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, describe, expect, it, vi } from 'vitest'

import type { Preset, PresetPreview as Preview } from '@/api/types'
import PresetPreview from './PresetPreview.vue'

const preset: Preset = {
  name: 'fast',
  description: 'short chunks',
  patches: { orchestrator: { chunk_duration_s: 8 }, stt: { beam_size: 1 } },
}

function answer(preview: Preview): void {
  vi.stubGlobal(
    'fetch',
    vi.fn((url: string) => {
      const body = url.includes('/preview')
        ? preview
        : { service: url.split('/').pop(), version: 3, epoch: 1, etag: '"1.3"', values: { chunk_duration_s: 10 } }
      return Promise.resolve(new Response(JSON.stringify(body), { status: 200, headers: { 'Content-Type': 'application/json' } }))
    }),
  )
}

const services = [
  { service: 'orchestrator', version: 3, etag: '"1.3"', changed: true, would_be_version: 4, patch: [{ op: 'replace' as const, path: '/chunk_duration_s', value: 8 }] },
  { service: 'stt', version: 0, etag: '"1.0"', changed: false, would_be_version: null, patch: [] },
]

afterEach(() => vi.unstubAllGlobals())

describe('PresetPreview', () => {
  it('shows each service diff, the verdict, and asks about unsaved edits to a touched service', async () => {
    answer({ preset: 'fast', changed: true, services, compatible: true, violations: [], errors: [] })
    const wrapper = mount(PresetPreview, { props: { preset, canApply: true, dirtyService: 'orchestrator' }, attachTo: document.body })
    await flushPromises()
    const orch = wrapper.get('[data-preview="orchestrator"]')
    expect(orch.text()).toContain('version 3 → 4')
    expect(orch.findAll('tbody td').map((c) => c.text())).toEqual(['10', '8'])
    expect(wrapper.get('[data-preview="stt"]').text()).toContain('unchanged (version 0)')
    expect(wrapper.get('.compat').text()).toContain('Compatible')
    expect(wrapper.get('legend').text()).toBe('Your unsaved edits to orchestrator')
    expect((wrapper.get('input[value="keep"]').element as HTMLInputElement).checked).toBe(true)
    expect(wrapper.get('button.primary').attributes('disabled')).toBeUndefined()
    wrapper.unmount()
  })

  it('offers no Apply when the rules refuse the result, nor to a viewer', async () => {
    const violations = [{ message: 'chunks longer than STT allows', fields: ['orchestrator.chunk_duration_s'] }]
    answer({ preset: 'fast', changed: true, services, compatible: false, violations, errors: [] })
    const refused = mount(PresetPreview, { props: { preset, canApply: true, dirtyService: null }, attachTo: document.body })
    await flushPromises()
    expect(refused.get('.compat').text()).toContain('chunks longer than STT allows')
    expect(refused.get('button.primary').attributes('disabled')).toBeDefined()
    refused.unmount()

    answer({ preset: 'fast', changed: true, services, compatible: true, violations: [], errors: [] })
    const viewer = mount(PresetPreview, { props: { preset, canApply: false, dirtyService: 'stt' }, attachTo: document.body })
    await flushPromises()
    expect(viewer.find('button.primary').exists()).toBe(false)
    expect(viewer.find('fieldset').exists()).toBe(false)
    viewer.unmount()
  })
})
