// Validation as you type, with ajv and the same JSON Schema the manager validates against.
// (Cross-field rules of a model validator are only known to the server: Validate / Save.)
import Ajv2020 from 'ajv/dist/2020'
import type { ErrorObject } from 'ajv'

import type { Json, JsonSchema } from '@/api/types'
import { getAt } from './json'
import { MASK } from './schema'

export type FieldErrors = Record<string, string>

function errorPath(error: ErrorObject): string {
  const parts = error.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  const params = error.params as Record<string, unknown>
  if (error.keyword === 'required' && typeof params.missingProperty === 'string') {
    parts.push(params.missingProperty)
  }
  if (error.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    parts.push(params.additionalProperty)
  }
  return parts.join('.')
}

function message(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>
  switch (error.keyword) {
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `must be ${String(params.comparison)} ${String(params.limit)}`
    case 'type':
      return `must be ${String(params.type).replace(',', ' or ')}`
    case 'enum':
      return 'must be one of the listed values'
    case 'additionalProperties':
      return 'is not a field of this service'
    default:
      return error.message ?? 'is not valid'
  }
}

/** A validator for one schema: document -> {dotted path: message} (empty when valid). */
export function makeValidator(schema: JsonSchema): (doc: unknown) => FieldErrors {
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false })
  const check = ajv.compile(schema)
  return (doc) => {
    if (check(doc)) return {}
    const out: FieldErrors = {}
    for (const error of check.errors ?? []) {
      const path = errorPath(error)
      // A kept secret is sent as the mask; the stored value is what gets validated.
      if (getAt(doc as Json, path.split('.')) === MASK) continue
      // anyOf reports the branch errors; keep the first, most specific one per field.
      if (error.keyword === 'anyOf' && path in out) continue
      if (!(path in out)) out[path] = message(error)
    }
    return out
  }
}
