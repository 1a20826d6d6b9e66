import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'

import DiffView from './DiffView.vue'

describe('DiffView', () => {
  it('shows each changed field with its value before and after', () => {
    const wrapper = mount(DiffView, {
      props: {
        label: 'changes of version 2',
        before: { rate: 16000, api_key: '****', tags: ['a'] },
        patch: [
          { op: 'replace', path: '/rate', value: 22050 },
          { op: 'replace', path: '/api_key', value: '****', secret: 'changed' },
          { op: 'remove', path: '/tags/0' },
        ],
      },
    })
    const table = wrapper.get('table')
    expect(table.attributes('aria-label')).toBe('changes of version 2')
    const rows = wrapper.findAll('tbody tr').map((r) => r.findAll('th, td').map((c) => c.text()))
    expect(rows).toEqual([
      ['rate', '16000', '22050'],
      ['api_key', '****', '(secret changed)'],
      ['tags.0', 'a', '(removed)'],
    ])
    expect(wrapper.findAll('tbody tr').map((r) => r.classes())).toEqual([['changed'], ['changed'], ['removed']])
  })

  it('says so when nothing changes', () => {
    const wrapper = mount(DiffView, { props: { label: 'x', patch: [] } })
    expect(wrapper.find('table').exists()).toBe(false)
    expect(wrapper.text()).toContain('No change.')
  })
})
