import { ErrorCode, ValidationError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { FilterScalar } from '../mesh/query.js'
import { assertCollection } from '../mesh/validate.js'
import { isPrefix } from './keys.js'

/**
 * A collection the till mirrors through the hub. With `scope`, only the
 * documents whose fields hold these values (the till's branch, say) are
 * sent and received: the hub files every document of the collection under
 * its values of the scope's fields, so give every device of the fleet the
 * same scope fields for a collection (each its own values).
 */
export interface HubCollection {
  name: string
  scope?: Record<string, FilterScalar>
}

/** TLS towards the hub: `true` for the system's trusted authorities, or files (PEM). */
export type HubTls = boolean | { caFile?: string; certFile?: string; keyFile?: string }

/**
 * A link to a NATS JetStream hub. Credentials: at most one of `token`,
 * `user` (with `password`), `nkeySeed` or `credsFile`.
 */
export interface HubOptions {
  /** NATS servers: `nats://host:port`, `tls://host:port` or `host:port`. Several for a cluster. */
  servers: string | readonly string[]
  user?: string
  password?: string
  token?: string
  /** An nkey seed (`SU…`): the server knows the user by its public key. */
  nkeySeed?: string
  /** A `.creds` file (a JWT and its nkey seed), for servers run in operator mode. */
  credsFile?: string
  tls?: HubTls
  /** The JetStream key-value bucket holding the documents. Default `meshmirror`. */
  bucket?: string
  /**
   * The first subject tokens of every key this mesh writes (`chain`,
   * `chain.shop-a`): subject permissions on the hub confine credentials to
   * their prefix.
   */
  prefix: string
  /** Copies of the bucket in a JetStream cluster, when this till is the one creating it. Default 1. */
  replicas?: number
  /** What to mirror. Default: every collection, whole. */
  collections?: readonly HubCollection[]
  /** The connection's name, as the server's monitoring shows it. Default: the till's site id. */
  name?: string
  /** Writes to the hub in flight at once (each waits for its acknowledgement). Default 64. */
  concurrency?: number
  /**
   * Least time between two commits of what the hub delivers, in ms, while it
   * keeps coming: what arrives meanwhile is applied in the same transaction.
   * A document after a quiet spell is applied at once. Each commit of the
   * mesh store has a fixed cost (and its write-ahead log a checkpoint every
   * thousand pages or so); spaced commits keep a till that receives a
   * steady stream from spending its time on them. Default 5; 0 commits each
   * delivery as soon as nothing else is queued.
   */
  applySpacingMs?: number
  /** Reconnect wait bounds. Default 250 ms to 5 s. */
  reconnect?: { minMs?: number; maxMs?: number }
  logger?: Logger
}

const BUCKET_RE = /^[A-Za-z0-9_-]{1,64}$/
const SERVER_RE = /^((nats|tls):\/\/)?[^\s/]+(:\d{1,5})?$/

function bad(key: string, message: string): ValidationError {
  return new ValidationError(ErrorCode.INVALID_OPTIONS, `Hub option ${key}: ${message}.`, { details: { key } })
}

/** Checks the options; throws `INVALID_OPTIONS` naming the first wrong one. */
export function assertHubOptions(o: HubOptions): void {
  if (typeof o !== 'object' || o === null) throw bad('hub', 'expected an object')
  const servers = typeof o.servers === 'string' ? [o.servers] : o.servers
  if (!Array.isArray(servers) || servers.length === 0) throw bad('servers', 'expected at least one server')
  for (const s of servers) {
    if (typeof s !== 'string' || !SERVER_RE.test(s))
      throw bad('servers', `${JSON.stringify(s)} is not nats://host:port`)
  }
  const given = ['token', 'user', 'nkeySeed', 'credsFile'].filter((k) => o[k as keyof HubOptions] !== undefined)
  if (given.length > 1) throw bad(given[1]!, `give one kind of credentials, not ${given.join(' and ')}`)
  for (const k of ['user', 'password', 'token', 'nkeySeed', 'credsFile'] as const) {
    if (o[k] !== undefined && (typeof o[k] !== 'string' || o[k] === '')) throw bad(k, 'expected a non-empty string')
  }
  if (o.password !== undefined && o.user === undefined) throw bad('password', 'needs "user"')
  if (o.nkeySeed !== undefined && !/^S[A-Z2-7]{57}$/.test(o.nkeySeed))
    throw bad('nkeySeed', 'expected an nkey seed (S…)')
  if (o.tls !== undefined && typeof o.tls !== 'boolean') {
    if (typeof o.tls !== 'object' || o.tls === null) throw bad('tls', 'expected true or { caFile, certFile, keyFile }')
    if ((o.tls.certFile === undefined) !== (o.tls.keyFile === undefined))
      throw bad('tls', 'certFile and keyFile go together')
  }
  if (o.bucket !== undefined && !BUCKET_RE.test(o.bucket)) throw bad('bucket', 'expected 1-64 of [A-Za-z0-9_-]')
  if (typeof o.prefix !== 'string' || !isPrefix(o.prefix))
    throw bad('prefix', 'expected subject tokens of [A-Za-z0-9_-] separated by dots (e.g. "chain.shop-a")')
  if (o.replicas !== undefined && (!Number.isInteger(o.replicas) || o.replicas < 1 || o.replicas > 5))
    throw bad('replicas', 'expected 1 to 5')
  if (o.concurrency !== undefined && (!Number.isInteger(o.concurrency) || o.concurrency < 1))
    throw bad('concurrency', 'expected a positive integer')
  if (
    o.applySpacingMs !== undefined &&
    (typeof o.applySpacingMs !== 'number' || !(o.applySpacingMs >= 0) || o.applySpacingMs > 1000)
  )
    throw bad('applySpacingMs', 'expected a number of milliseconds from 0 to 1000')
  if (o.collections !== undefined) {
    if (!Array.isArray(o.collections)) throw bad('collections', 'expected a list')
    const seen = new Set<string>()
    for (const c of o.collections) {
      try {
        assertCollection(c?.name)
      } catch (e) {
        throw bad('collections', (e as Error).message)
      }
      if (seen.has(c.name)) throw bad('collections', `${c.name} is listed twice`)
      seen.add(c.name)
      for (const [field, value] of Object.entries(c.scope ?? {})) {
        if (value !== null && !['string', 'number', 'boolean'].includes(typeof value))
          throw bad('collections', `scope ${c.name}.${field} must be a string, number, boolean or null`)
      }
    }
  }
}
