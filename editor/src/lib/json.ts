// Small helpers on JSON values: deep equality, copies, paths.
import type { Json, JsonObject } from '@/api/types'

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]))
  }
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a)
    const kb = Object.keys(b)
    return ka.length === kb.length && ka.every((k) => k in b && deepEqual(a[k], b[k]))
  }
  return false
}

export function clone<T extends Json | undefined>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T)
}

export function getAt(root: Json | undefined, path: readonly string[]): Json | undefined {
  let node: Json | undefined = root
  for (const key of path) {
    if (!isObject(node)) return undefined
    node = node[key]
  }
  return node
}

/** Set (or with ``undefined`` delete) the value at ``path``, creating objects on the way. */
export function setAt(root: JsonObject, path: readonly string[], value: Json | undefined): void {
  if (path.length === 0) throw new Error('setAt needs a non-empty path')
  let node: JsonObject = root
  for (const key of path.slice(0, -1)) {
    const next = node[key]
    if (!isObject(next)) node[key] = {}
    node = node[key] as JsonObject
  }
  const last = path[path.length - 1] as string
  if (value === undefined) delete node[last]
  else node[last] = value
}

export const pathKey = (path: readonly string[]): string => path.join('.')
