// RFC 6902 patches (the manager's diff API, preset previews) as rows a person reads:
// which field, what it was, what it becomes. Secrets never carry a value, only "changed".
import type { Json, PatchOp } from '@/api/types'
import { isObject } from './json'

export type DiffKind = 'added' | 'removed' | 'changed'

export interface DiffRow {
  /** The field as a dotted path ("nested.threshold"; list items by index: "tags.1"). */
  field: string
  kind: DiffKind
  before: Json | undefined
  after: Json | undefined
  secret: boolean
}

/** The keys of an RFC 6901 JSON Pointer ("/a~1b/0" → ["a/b", "0"]). */
export function pointerKeys(pointer: string): string[] {
  if (pointer === '') return []
  if (!pointer.startsWith('/')) throw new Error(`not a JSON Pointer: ${pointer}`)
  return pointer
    .slice(1)
    .split('/')
    .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'))
}

function at(root: Json | undefined, keys: readonly string[]): Json | undefined {
  let node = root
  for (const key of keys) {
    if (Array.isArray(node)) node = node[Number(key)]
    else if (isObject(node)) node = node[key]
    else return undefined
  }
  return node
}

/** One row per operation; ``before`` is read from the document the patch starts from. */
export function describePatch(patch: readonly PatchOp[], before?: Json): DiffRow[] {
  return patch.map((op) => {
    const keys = pointerKeys(op.path)
    const old = before === undefined ? undefined : at(before, keys)
    const secret = op.secret === 'changed'
    const kind: DiffKind = op.op === 'remove' ? 'removed' : op.op === 'add' && old === undefined ? 'added' : 'changed'
    return {
      field: keys.join('.') || '(whole document)',
      kind,
      before: op.op === 'add' && kind === 'added' ? undefined : old,
      after: op.op === 'remove' ? undefined : op.value,
      secret,
    }
  })
}

/** A value as shown in a diff cell. */
export function showValue(value: Json | undefined, secret = false): string {
  if (secret) return '(secret changed)'
  if (value === undefined) return '—'
  return typeof value === 'string' ? value : JSON.stringify(value)
}
