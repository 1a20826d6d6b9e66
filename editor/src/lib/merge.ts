// Three-way merge of JSON documents, for a save that lost the race (HTTP 412).
//
// ``base`` is the version the form was loaded from, ``theirs`` the version now stored,
// ``yours`` the form. Where only one side changed a value, that change wins (so edits
// that do not overlap are rebased automatically); where both changed it differently, the
// field is a conflict: the merged document keeps YOUR value (typed input is never lost)
// until the user picks a side with ``resolveConflicts``. Objects merge key by key;
// arrays and scalars are replaced whole.
import type { Json, JsonObject } from '@/api/types'
import { clone, deepEqual, isObject, pathKey, setAt } from './json'

export interface Conflict {
  path: string[]
  base: Json | undefined
  theirs: Json | undefined
  yours: Json | undefined
}

export interface MergeResult {
  merged: JsonObject
  /** Fields both sides changed differently. */
  conflicts: Conflict[]
  /** Fields only they changed: taken into the merge. */
  theirChanges: string[][]
  /** Fields only you changed: kept in the merge. */
  yourChanges: string[][]
}

export type Side = 'theirs' | 'yours'

function mergeValue(
  base: Json | undefined,
  theirs: Json | undefined,
  yours: Json | undefined,
  path: string[],
  out: Omit<MergeResult, 'merged'>,
): Json | undefined {
  if (deepEqual(theirs, yours)) return clone(yours)
  if (deepEqual(yours, base)) {
    out.theirChanges.push(path)
    return clone(theirs)
  }
  if (deepEqual(theirs, base)) {
    out.yourChanges.push(path)
    return clone(yours)
  }
  if (isObject(theirs) && isObject(yours) && (base === undefined || isObject(base))) {
    const b: JsonObject = base ?? {}
    const result: JsonObject = {}
    const keys = [...new Set([...Object.keys(theirs), ...Object.keys(yours), ...Object.keys(b)])]
    for (const key of keys) {
      const value = mergeValue(b[key], theirs[key], yours[key], [...path, key], out)
      if (value !== undefined) result[key] = value
    }
    return result
  }
  out.conflicts.push({ path, base: clone(base), theirs: clone(theirs), yours: clone(yours) })
  return clone(yours)
}

export function threeWayMerge(base: JsonObject, theirs: JsonObject, yours: JsonObject): MergeResult {
  const out = { conflicts: [], theirChanges: [], yourChanges: [] }
  const merged = mergeValue(base, theirs, yours, [], out)
  return { merged: isObject(merged) ? merged : {}, ...out }
}

/** The merged document with each conflict taken from the chosen side (default: yours). */
export function resolveConflicts(
  result: MergeResult,
  choices: Readonly<Record<string, Side>>,
): JsonObject {
  const doc = clone(result.merged)
  for (const conflict of result.conflicts) {
    const side = choices[pathKey(conflict.path)] ?? 'yours'
    const value = side === 'theirs' ? conflict.theirs : conflict.yours
    if (conflict.path.length === 0) return isObject(value) ? clone(value) : doc
    setAt(doc, conflict.path, clone(value))
  }
  return doc
}
