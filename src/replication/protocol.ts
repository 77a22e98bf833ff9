import type { RemoteChange, VersionVector } from '../engine/types.js'

/**
 * The wire protocol version. Peers with another version are refused.
 * Version 2 numbers chunks and acknowledges them cumulatively.
 */
export const PROTOCOL_VERSION = 2

/**
 * Messages are JSON text frames. After the transport connects, each side
 * sends `hello`; each answers the other's nonce with `auth`; then each sends
 * `sync` (what it has, how many chunks it accepts unacknowledged and the
 * largest frame it accepts) and streams `changes` the other lacks, at most
 * that many chunks ahead of the other's `ack`, and keeps pushing its new
 * commits as `changes`.
 *
 * Chunks are numbered from 1 in each session (`n`) and carry the sender's
 * sequence they reach (`cursor`): the receiver applies chunk `n` only right
 * after chunk `n - 1`, so a lost, duplicated or reordered frame can never
 * leave a gap. An `ack` acknowledges every chunk up to its `n`.
 */
export type Message =
  /** `keys`: ids of the mesh secrets the sender holds (several while they rotate), so the other answers with one both hold. */
  | { t: 'hello'; v: number; mesh: string; site: string; nonce: string; keys?: string[] }
  | { t: 'auth'; proof: string }
  | { t: 'sync'; vv: VersionVector; after: number; window: number; maxFrame: number }
  | { t: 'changes'; n: number; changes: RemoteChange[]; cursor: number; complete: boolean; vv?: VersionVector }
  | { t: 'ack'; n: number; cursor: number }
  | { t: 'error'; code: string; message: string }

const SITE_RE = /^[A-Za-z0-9_-]{1,64}$/
const MESH_RE = /^[A-Za-z0-9_.:-]{1,128}$/

export function isMeshId(s: unknown): s is string {
  return typeof s === 'string' && MESH_RE.test(s)
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false
  const p = Object.getPrototypeOf(v)
  return p === Object.prototype || p === null
}

function isSeq(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0
}

function isKeyIds(v: unknown): v is string[] {
  return Array.isArray(v) && v.length <= 8 && v.every((k) => typeof k === 'string' && /^[0-9a-f]{1,64}$/.test(k))
}

function isChunkNo(v: unknown): v is number {
  return isSeq(v) && v > 0
}

function isVv(v: unknown): v is VersionVector {
  if (!isPlainObject(v)) return false
  const sites = Object.keys(v)
  if (sites.length > 100_000) return false
  for (const site of sites) if (!SITE_RE.test(site) || !isSeq(v[site])) return false
  return true
}

/**
 * Parses and checks the envelope of a frame. Changes inside `changes` are
 * checked by the store before anything is applied. Returns a reason string
 * for a malformed frame.
 */
export function decodeMessage(frame: string): Message | string {
  let m: unknown
  try {
    m = JSON.parse(frame)
  } catch {
    return 'not JSON'
  }
  if (!isPlainObject(m) || typeof m.t !== 'string') return 'not a message object'
  switch (m.t) {
    case 'hello':
      if (!Number.isSafeInteger(m.v)) return 'hello: bad version'
      if (!isMeshId(m.mesh)) return 'hello: bad mesh id'
      if (typeof m.site !== 'string' || !SITE_RE.test(m.site)) return 'hello: bad site id'
      if (typeof m.nonce !== 'string' || !/^[0-9a-f]{32,128}$/.test(m.nonce)) return 'hello: bad nonce'
      if (m.keys !== undefined && !isKeyIds(m.keys)) return 'hello: bad key ids'
      return m as Message
    case 'auth':
      return typeof m.proof === 'string' && /^[0-9a-f]{64}$/.test(m.proof) ? (m as Message) : 'auth: bad proof'
    case 'sync':
      if (!isVv(m.vv) || !isSeq(m.after)) return 'sync: bad version vector or cursor'
      if (!isChunkNo(m.window) || m.window > 1024) return 'sync: window must be 1-1024'
      return isSeq(m.maxFrame) && m.maxFrame >= 1024 ? (m as Message) : 'sync: maxFrame must be at least 1024'
    case 'changes':
      if (!Array.isArray(m.changes) || !isChunkNo(m.n) || !isSeq(m.cursor) || typeof m.complete !== 'boolean')
        return 'changes: bad envelope'
      if (m.vv !== undefined && !isVv(m.vv)) return 'changes: bad version vector'
      return m as Message
    case 'ack':
      return isChunkNo(m.n) && isSeq(m.cursor) ? (m as Message) : 'ack: bad chunk number or cursor'
    case 'error':
      return typeof m.code === 'string' && typeof m.message === 'string' ? (m as Message) : 'error: bad fields'
    default:
      return `unknown message type ${JSON.stringify(String(m.t).slice(0, 20))}`
  }
}

export function encodeMessage(m: Message): string {
  return JSON.stringify(m)
}

/**
 * The `changes` message `encodeMessage` makes, from changes already encoded
 * (each the JSON text of a `RemoteChange`): the same text, without encoding
 * the documents again.
 */
export function encodeChanges(
  n: number,
  changes: readonly string[],
  cursor: number,
  complete: boolean,
  vv: VersionVector | undefined,
): string {
  const tail = vv ? `,"vv":${JSON.stringify(vv)}}` : '}'
  return `{"t":"changes","n":${n},"changes":[${changes.join(',')}],"cursor":${cursor},"complete":${complete}${tail}`
}
