import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import { computed, defineComponent, h, ref } from 'vue'

import type { Json, JsonObject, JsonSchema } from '@/api/types'
import { FORM } from '@/composables/useForm'
import { setAt } from '@/lib/json'
import { fieldsOf, MASK } from '@/lib/schema'
import { makeValidator } from '@/lib/validate'
import FieldEditor from './FieldEditor.vue'

const schema: JsonSchema = {
  type: 'object',
  properties: {
    rate: { type: 'integer', minimum: 8000, title: 'Sample rate' },
    api_key: { type: 'string', 'x-secret': true, title: 'API key' },
    on: { type: 'boolean', title: 'Enabled' },
  },
}

function mountForm(values: JsonObject, readonly = false) {
  const draft = ref<JsonObject>(values)
  const validate = makeValidator(schema)
  const Host = defineComponent({
    provide: {
      [FORM as symbol]: {
        draft,
        errors: computed(() => validate(draft.value)),
        readonly: computed(() => readonly),
        update: (p: string[], v: Json | undefined) => setAt(draft.value, p, v),
      },
    },
    render: () => fieldsOf(schema).map((spec) => h(FieldEditor, { spec })),
  })
  return { wrapper: mount(Host, { attachTo: document.body }), draft }
}

describe('FieldEditor', () => {
  it('ties every label to its input', () => {
    const { wrapper } = mountForm({ rate: 16000, api_key: MASK, on: false })
    for (const label of wrapper.findAll('label')) {
      const target = label.attributes('for')
      expect(target && wrapper.find(`#${target}`).exists()).toBe(true)
    }
    expect(wrapper.find('label[for=f-rate]').text()).toBe('Sample rate')
  })

  it('validates as you type and keeps the typed value', async () => {
    const { wrapper, draft } = mountForm({ rate: 16000, api_key: MASK, on: false })
    await wrapper.find('#f-rate').setValue('12')
    expect(draft.value.rate).toBe(12)
    expect(wrapper.find('#f-rate-err').text()).toBe('must be >= 8000')
    expect(wrapper.find('#f-rate').attributes('aria-invalid')).toBe('true')
  })

  it('keeps a stored secret masked, replaces it on demand and can keep it again', async () => {
    const { wrapper, draft } = mountForm({ rate: 16000, api_key: MASK, on: false })
    expect(wrapper.find('#f-api_key').attributes('type')).toBe('text')
    await wrapper.find('.secret button').trigger('click')
    expect(wrapper.find('#f-api_key').attributes('type')).toBe('password')
    await wrapper.find('#f-api_key').setValue('new-secret')
    expect(draft.value.api_key).toBe('new-secret')
    await wrapper.find('.secret button').trigger('click') // "Keep stored"
    expect(draft.value.api_key).toBe(MASK)
  })

  it('disables inputs and offers no secret replacement when read only', () => {
    const { wrapper } = mountForm({ rate: 16000, api_key: MASK, on: true }, true)
    expect(wrapper.find('#f-rate').attributes('disabled')).toBeDefined()
    expect(wrapper.find('.secret button').exists()).toBe(false)
  })
})
