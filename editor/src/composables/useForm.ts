// What a form shares with its (recursive) field editors: the draft, its errors, read-only.
import type { ComputedRef, InjectionKey, Ref } from 'vue'

import type { Json, JsonObject } from '@/api/types'

export interface FormContext {
  draft: Ref<JsonObject>
  errors: ComputedRef<Record<string, string>>
  readonly: ComputedRef<boolean>
  update(path: string[], value: Json | undefined): void
}

export const FORM: InjectionKey<FormContext> = Symbol('form')
