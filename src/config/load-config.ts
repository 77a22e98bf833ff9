import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, extname, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { z } from 'zod'
import { ErrorCode, ValidationError } from '../errors.js'
import { configSchema, type MeshmirrorConfig } from './config-schema.js'

/** A validated config, with every path absolute (resolved against the config file's directory). */
export interface ResolvedConfig extends MeshmirrorConfig {
  /** The config file it was read from, when it was. */
  file?: string
}

/** The config error: code `INVALID_CONFIG`, `details.key` the offending key (`tables[0].table`). */
export function configError(source: string, key: string | undefined, message: string, cause?: unknown) {
  const where = key ? `${source}: ${key}: ` : `${source}: `
  return new ValidationError(ErrorCode.INVALID_CONFIG, `${where}${message}`, {
    details: { file: source, ...(key ? { key } : {}) },
    ...(cause === undefined ? {} : { cause }),
  })
}

/** Most problems listed in a config error. */
const MAX_ISSUES = 20

/** `tables[0].table` from a zod path. */
export function keyPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`
  return out
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`
  }
  if (issue.code === 'invalid_type' && issue.message.includes('received undefined')) {
    return `missing: expected ${issue.expected}`
  }
  return issue.message.replace(/^Invalid input: /, '')
}

const isEnvReference = (value: string) => /^\$[A-Za-z_][A-Za-z0-9_]*$/.test(value)

/** A secret as written, or the environment variable it names (`$NAME`). */
function fromEnv(value: string, source: string, key: string): string {
  if (!isEnvReference(value)) return value
  const env = process.env[value.slice(1)]
  if (env === undefined) throw configError(source, key, `environment variable ${value.slice(1)} is not set`)
  return env
}

/**
 * `mesh.ditto.licenseToken` and `mesh.ditto.sharedKey` given as `$ENV_NAME`,
 * read from the environment. An unset licence token is left out (the store
 * then works locally, without sync); an unset shared key is an error.
 */
function withDittoEnv(raw: unknown, source: string): unknown {
  const mesh = (raw as { mesh?: unknown } | null)?.mesh
  const ditto = (mesh as { ditto?: unknown } | null | undefined)?.ditto
  if (typeof ditto !== 'object' || ditto === null) return raw
  const out: Record<string, unknown> = { ...(ditto as Record<string, unknown>) }
  for (const key of ['licenseToken', 'sharedKey']) {
    const value = out[key]
    if (typeof value !== 'string' || !isEnvReference(value)) continue
    const env = process.env[value.slice(1)]
    if (env !== undefined && env !== '') out[key] = env
    else if (key === 'licenseToken') delete out[key]
    else throw configError(source, `mesh.ditto.${key}`, `environment variable ${value.slice(1)} is not set`)
  }
  return { ...(raw as object), mesh: { ...(mesh as object), ditto: out } }
}

/** `hub.password`, `hub.token` and `hub.nkeySeed` given as `$ENV_NAME`, read from the environment. */
function withHubEnv(raw: unknown, source: string): unknown {
  const hub = (raw as { hub?: unknown } | null)?.hub
  if (typeof hub !== 'object' || hub === null || Array.isArray(hub)) return raw
  const out: Record<string, unknown> = { ...(hub as Record<string, unknown>) }
  for (const key of ['password', 'token', 'nkeySeed']) {
    const value = out[key]
    if (typeof value === 'string') out[key] = fromEnv(value, source, `hub.${key}`)
  }
  return { ...(raw as object), hub: out }
}

/**
 * Checks a config object against the schema and resolves its paths against
 * `baseDir`. Throws `INVALID_CONFIG` naming every offending key.
 */
export function parseConfig(input: unknown, source: string, baseDir: string): ResolvedConfig {
  try {
    return parseChecked(input, source, baseDir)
  } catch (error) {
    if (error instanceof ValidationError) throw error
    // A module's default export can be anything: a getter or a proxy that throws when read.
    const why = error instanceof Error ? error.message : typeof error === 'string' ? error : typeof error
    throw configError(source, undefined, `the config cannot be read (${why}).`, error)
  }
}

function parseChecked(input: unknown, source: string, baseDir: string): ResolvedConfig {
  let raw = input
  if (typeof raw === 'object' && raw !== null) {
    const r = raw as { secret?: unknown; previousSecrets?: unknown }
    if (typeof r.secret === 'string') raw = { ...raw, secret: fromEnv(r.secret, source, 'secret') }
    const database = (raw as { database?: unknown }).database
    if (typeof database === 'string' && isEnvReference(database)) {
      raw = { ...(raw as object), database: fromEnv(database, source, 'database') }
    }
    if (Array.isArray(r.previousSecrets)) {
      const previous = r.previousSecrets.map((s: unknown, i) =>
        typeof s === 'string' ? fromEnv(s, source, `previousSecrets[${i}]`) : s,
      )
      raw = { ...(raw as object), previousSecrets: previous }
    }
  }
  raw = withDittoEnv(raw, source)
  raw = withHubEnv(raw, source)
  const parsed = configSchema.safeParse(raw)
  if (!parsed.success) {
    const issues = parsed.error.issues
    // A list of thousands of bad entries is told in its first few: the rest are alike.
    const lines = issues.slice(0, MAX_ISSUES).map((i) => `${keyPath(i.path) || '(top level)'}: ${describeIssue(i)}`)
    if (issues.length > MAX_ISSUES) lines.push(`… and ${issues.length - MAX_ISSUES} more`)
    const first = issues[0]
    const key = first ? keyPath(first.path) : undefined
    throw new ValidationError(
      ErrorCode.INVALID_CONFIG,
      `${source} is not a valid meshmirror config:\n  ${lines.join('\n  ')}`,
      { details: { file: source, ...(key ? { key } : {}), issues: lines, issueCount: issues.length } },
    )
  }
  const c = parsed.data
  const out: ResolvedConfig = {
    ...c,
    // A Postgres URL is an address, not a path.
    database: /^postgres(ql)?:\/\//i.test(c.database) ? c.database : resolve(baseDir, c.database),
    mesh: { ...c.mesh, dir: resolve(baseDir, c.mesh.dir) },
  }
  if (c.hub) {
    const h = c.hub
    out.hub = {
      ...h,
      ...(h.credsFile ? { credsFile: resolve(baseDir, h.credsFile) } : {}),
      ...(typeof h.tls === 'object'
        ? {
            tls: Object.fromEntries(
              Object.entries(h.tls).map(([k, v]) => [k, typeof v === 'string' ? resolve(baseDir, v) : v]),
            ),
          }
        : {}),
    }
  }
  if (c.adapters) {
    const module = c.adapters.module
    out.adapters = { ...c.adapters, module: module.startsWith('.') ? resolve(baseDir, module) : module }
  }
  return out
}

/**
 * Reads a config file: JSON (`.json`), or a module whose default export is
 * the config (`.mjs`, `.js`, `.ts` when run through tsx).
 *
 * @example
 * ```ts
 * const config = await loadConfig('./meshmirror.config.json')
 * ```
 */
export async function loadConfig(file: string): Promise<ResolvedConfig> {
  const path = resolve(file)
  if (!existsSync(path)) {
    throw configError(
      path,
      undefined,
      'no such file. Create one with `meshmirror init --database <file>`, or pass --config.',
    )
  }
  if (!statSync(path).isFile()) throw configError(path, undefined, 'not a file.')
  let input: unknown
  if (extname(path) === '.json') {
    try {
      input = JSON.parse(readFileSync(path, 'utf8'))
    } catch (error) {
      throw configError(path, undefined, `not valid JSON (${(error as Error).message}).`, error)
    }
  } else {
    try {
      const mod = (await import(pathToFileURL(path).href)) as { default?: unknown }
      input = mod.default
    } catch (error) {
      throw configError(path, undefined, `cannot be loaded (${(error as Error).message}).`, error)
    }
    if (input === undefined) throw configError(path, undefined, 'the module has no default export (the config).')
  }
  return { ...parseConfig(input, path, dirname(path)), file: path }
}
