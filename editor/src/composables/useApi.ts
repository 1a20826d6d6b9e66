// The HTTP client of the editor: bearer token, JSON bodies, problem+json errors.
import type { Problem } from '@/api/types'
import { useAuth } from './useAuth'

export class ApiError extends Error {
  readonly status: number
  readonly problem: Problem

  constructor(status: number, problem: Problem) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title)
    this.status = status
    this.problem = problem
  }
}

export interface RequestOptions {
  body?: unknown
  headers?: Record<string, string>
  signal?: AbortSignal
}

export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const { token } = useAuth()
  const headers: Record<string, string> = { Accept: 'application/json', ...options.headers }
  if (token.value) headers.Authorization = `Bearer ${token.value}`
  const init: RequestInit = { method, headers, signal: options.signal }
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body)
    headers['Content-Type'] ??= 'application/json'
  }
  let resp: Response
  try {
    resp = await fetch(path, init)
  } catch (err) {
    throw new ApiError(0, { title: 'Manager unreachable', detail: String(err) })
  }
  const data: unknown = resp.status === 204 ? null : await resp.json().catch(() => null)
  if (!resp.ok) {
    const problem =
      data && typeof data === 'object' && 'title' in data
        ? (data as Problem)
        : { title: resp.statusText || `HTTP ${resp.status}` }
    throw new ApiError(resp.status, problem)
  }
  return data as T
}

export const api = {
  get: <T>(path: string, options?: RequestOptions) => request<T>('GET', path, options),
  put: <T>(path: string, body: unknown, headers?: Record<string, string>) => request<T>('PUT', path, { body, headers }),
  post: <T>(path: string, body: unknown, headers?: Record<string, string>) => request<T>('POST', path, { body, headers }),
}

export function problemOf(err: unknown): Problem {
  if (err instanceof ApiError) return err.problem
  return { title: err instanceof Error ? err.message : String(err) }
}
