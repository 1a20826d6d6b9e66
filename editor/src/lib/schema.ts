// From a service's JSON Schema (as pydantic writes it) to the fields of the form.
import type { Json, JsonSchema } from '@/api/types'

export const MASK = '**********' // the API's mask for a stored secret; sent back = keep it

export type FieldKind = 'object' | 'boolean' | 'enum' | 'number' | 'string' | 'secret' | 'json'

export interface FieldSpec {
  key: string
  path: string[]
  label: string
  description: string | undefined
  kind: FieldKind
  integer: boolean
  nullable: boolean
  schema: JsonSchema
  options: Json[]
  children: FieldSpec[]
}

function deref(ref: string, root: JsonSchema): JsonSchema {
  const name = ref.split('/').pop() ?? ''
  return root.$defs?.[name] ?? {}
}

/** The node with its $ref / single allOf / nullable anyOf folded in (own keywords win). */
export function resolveNode(node: JsonSchema, root: JsonSchema): JsonSchema & { nullable?: boolean } {
  let p: JsonSchema & { nullable?: boolean } = { ...node }
  if (p.$ref) {
    const { $ref, ...own } = p
    p = { ...resolveNode(deref($ref, root), root), ...own }
  }
  if (p.allOf && p.allOf.length === 1 && p.allOf[0]) {
    const { allOf, ...own } = p
    p = { ...resolveNode(allOf[0] as JsonSchema, root), ...own }
  }
  if (p.anyOf) {
    const options = p.anyOf.filter((o) => o.type !== 'null')
    const nullable = options.length < p.anyOf.length
    if (options.length === 1 && options[0]) {
      const { anyOf, ...own } = p
      void anyOf
      return { ...resolveNode(options[0], root), ...own, nullable }
    }
  }
  return p
}

export function kindOf(p: JsonSchema): FieldKind {
  if (p['x-secret'] || p.format === 'password') return 'secret'
  if (p.enum) return 'enum'
  if (p.const !== undefined) return 'enum'
  if (p.type === 'boolean') return 'boolean'
  if (p.type === 'integer' || p.type === 'number') return 'number'
  if (p.type === 'string') return 'string'
  if (p.type === 'object' && p.properties) return 'object'
  return 'json'
}

/** A human label: the field's own title, else its name made readable. */
export function labelFor(key: string, node: JsonSchema): string {
  if (node.title) return node.title
  const words = key.replace(/_/g, ' ').trim()
  return words.charAt(0).toUpperCase() + words.slice(1)
}

export function fieldsOf(schema: JsonSchema, root: JsonSchema = schema, path: string[] = []): FieldSpec[] {
  const props = resolveNode(schema, root).properties ?? {}
  return Object.entries(props).map(([key, raw]) => {
    const p = resolveNode(raw, root)
    const kind = kindOf(p)
    const fieldPath = [...path, key]
    // The property's own title wins over the referenced model's class name.
    const label = labelFor(key, raw.$ref && !raw.title ? {} : p)
    return {
      key,
      path: fieldPath,
      label,
      description: p.description,
      kind,
      integer: p.type === 'integer',
      nullable: Boolean(p.nullable),
      schema: p,
      options: p.enum ?? (p.const !== undefined ? [p.const] : []),
      children: kind === 'object' ? fieldsOf(p, root, fieldPath) : [],
    }
  })
}

/** Paths (dotted) of every secret field: their masked values are not validated here. */
export function secretPaths(fields: FieldSpec[]): Set<string> {
  const out = new Set<string>()
  const walk = (list: FieldSpec[]) => {
    for (const f of list) {
      if (f.kind === 'secret') out.add(f.path.join('.'))
      walk(f.children)
    }
  }
  walk(fields)
  return out
}

/** Human labels by dotted path ("nested.threshold" → "Nested › Threshold"), for diffs. */
export function labelsOf(fields: FieldSpec[], prefix = ''): Record<string, string> {
  const out: Record<string, string> = {}
  for (const f of fields) {
    const label = prefix ? `${prefix} › ${f.label}` : f.label
    out[f.path.join('.')] = label
    Object.assign(out, labelsOf(f.children, label))
  }
  return out
}
