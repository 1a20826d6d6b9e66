// Typed models of the manager's HTTP API (config_manager/api/schemas.py).

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
export type JsonObject = { [key: string]: Json }

export type Role = 'viewer' | 'editor' | 'admin'

/** GET /api/v1/whoami: who the token is; ``scopes`` null means every service. */
export interface Whoami {
  name: string
  role: Role
  scopes: string[] | null
}

/** RFC 9457 problem details, with the manager's extensions. */
export interface Problem {
  type?: string
  title: string
  status?: number
  detail?: string
  errors?: { loc?: (string | number)[]; msg: string; type?: string }[]
  violations?: { message: string; fields?: string[] }[]
  [extension: string]: unknown
}

export interface ServiceSummary {
  name: string
  version: number
  epoch: number
  updated_at: string | null
  instances: number
}

export interface ConfigDoc {
  service: string
  version: number
  epoch: number
  etag: string
  values: JsonObject
  updated_at: string | null
  updated_by: string | null
}

export interface WriteResult extends ConfigDoc {
  publication: 'published' | 'pending'
}

export type InstanceStatus = 'applied' | 'rejected' | 'failed' | 'offline' | 'unknown'

export interface Instance {
  instance: string
  status: InstanceStatus | string
  version: number | null
  epoch: number | null
  reason: string | null
  detail: string | null
  time: string | null
  received_at: number
  current: boolean
  /** fresh / waiting / stale: the instance's freshness record (null: not reported). */
  freshness?: string | null
  /** The latest report does not verify (present once the manager checks report signatures). */
  forged?: boolean
  forged_reason?: string | null
}

export interface Version {
  service: string
  version: number
  epoch: number
  created_at: string
  created_by: string
  change_id: string
  values: JsonObject
}

export interface Preset {
  name: string
  description: string
  patches: Record<string, JsonObject>
}

export interface PresetApplied {
  preset: string
  change_id: string | null
  versions: { service: string; version: number; epoch: number; etag: string }[]
  publication: 'published' | 'pending'
}

/** GET /readyz (200 when ready, 503 with the same body when not). */
export interface Readiness {
  status: 'ready' | 'not ready'
  database: 'open' | 'closed'
  broker: 'connected' | 'disconnected'
  broker_error: string | null
  publisher_failure: string | null
  outbox_depth: number | null
  publication: string
  epoch: number | null
}

/** The subset of JSON Schema (2020-12, as pydantic writes it) the form understands. */
export interface JsonSchema {
  type?: string | string[]
  title?: string
  description?: string
  properties?: Record<string, JsonSchema>
  required?: string[]
  items?: JsonSchema
  enum?: Json[]
  const?: Json
  default?: Json
  format?: string
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  exclusiveMaximum?: number
  minLength?: number
  maxLength?: number
  pattern?: string
  anyOf?: JsonSchema[]
  allOf?: JsonSchema[]
  $ref?: string
  $defs?: Record<string, JsonSchema>
  'x-secret'?: boolean
  [keyword: string]: unknown
}

/** An RFC 6902 operation (GET .../diff, preset previews); a changed secret: ``secret: 'changed'``. */
export interface PatchOp {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test'
  path: string
  value?: Json
  from?: string
  secret?: 'changed'
}

/** GET /api/v1/configs/{service}/diff */
export interface Diff {
  service: string
  from: number
  to: number
  patch: PatchOp[]
}

/** POST /api/v1/presets/{name}/preview: what applying would do, nothing stored. */
export interface PresetPreview {
  preset: string
  changed: boolean
  services: {
    service: string
    version: number
    etag: string
    changed: boolean
    would_be_version: number | null
    patch: PatchOp[]
  }[]
  compatible: boolean
  violations: { message: string; fields?: string[]; rule?: string }[]
  errors: { loc?: (string | number)[]; msg: string }[]
}

/** GET /api/v1/audit */
export interface AuditEntry {
  id: number
  at: string
  actor: string
  action: string
  outcome: 'ok' | 'refused'
  service: string | null
  version: number | null
  request_id: string | null
  reason: string | null
  detail: Record<string, unknown>
}

/** GET /api/v1/sync: one instance (``forged`` once the manager reports it). */
export interface SyncInstance {
  instance: string
  state: 'in_sync' | 'behind' | 'failed' | 'rejected' | 'offline' | 'retired'
  status: string
  version: number | null
  epoch: number | null
  freshness?: string | null
  forged?: boolean
  forged_reason?: string | null
}

export interface SyncService {
  service: string
  version: number
  epoch: number
  instances: SyncInstance[]
}

export interface Sync {
  epoch: number
  services: SyncService[]
  summary: { stale?: number; forged?: number; [state: string]: number | undefined }
}
