import type { RemoteChange } from '../engine/types.js'
import { ErrorCode, ValidationError } from '../errors.js'
import { assertCollection, DEFAULT_MAX_DOC_BYTES } from '../mesh/validate.js'

/**
 * What one peer may make this one do. A chunk that breaks a bound drops the
 * link with `PEER_LIMIT_EXCEEDED` before anything of it is applied; a peer
 * sending faster than `maxChangesPerSecond` is slowed down by holding back
 * its acknowledgements (flow control), not dropped. Set them alike on every
 * peer: a document one peer accepts and another refuses stops replication
 * between them.
 *
 * @example
 * ```ts
 * await startReplication(mesh, { meshId, secret, limits: { maxCollections: 50, maxChangesPerSecond: 2000 } })
 * ```
 */
export interface PeerLimits {
  /** Largest received document (its JSON, UTF-8), in bytes. Default 1 MiB (the store's own default limit). */
  maxDocumentBytes?: number
  /** Most fields a received document (or its merge metadata) may have. Default 2,000 (SQLite's column limit). */
  maxFieldsPerDocument?: number
  /**
   * Most collections the store may hold for a received change to create a
   * new one. Changes to existing collections, and local writes, are not
   * limited. Default 1,000.
   */
  maxCollections?: number
  /** Changes one link may deliver per second, sustained. Default 20,000. */
  maxChangesPerSecond?: number
  /** Changes one link may deliver at once above the sustained rate. Default 100,000. */
  burstChanges?: number
}

export const DEFAULT_PEER_LIMITS: Readonly<Required<PeerLimits>> = Object.freeze({
  maxDocumentBytes: DEFAULT_MAX_DOC_BYTES,
  maxFieldsPerDocument: 2000,
  maxCollections: 1000,
  maxChangesPerSecond: 20_000,
  burstChanges: 100_000,
})

/** The limits with defaults filled in. Throws `INVALID_OPTIONS` for a malformed one. */
export function resolvePeerLimits(limits: PeerLimits | undefined): Readonly<Required<PeerLimits>> {
  if (limits === undefined) return DEFAULT_PEER_LIMITS
  if (typeof limits !== 'object' || limits === null || Array.isArray(limits)) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'replication: limits must be an object.')
  }
  const out = { ...DEFAULT_PEER_LIMITS }
  for (const key of Object.keys(limits)) {
    if (!Object.hasOwn(DEFAULT_PEER_LIMITS, key)) {
      throw new ValidationError(
        ErrorCode.INVALID_OPTIONS,
        `replication: unknown limit ${JSON.stringify(key)} (known: ${Object.keys(DEFAULT_PEER_LIMITS).join(', ')}).`,
      )
    }
    const v = (limits as Record<string, unknown>)[key]
    if (v === undefined) continue
    if (!Number.isSafeInteger(v) || (v as number) < 1) {
      throw new ValidationError(
        ErrorCode.INVALID_OPTIONS,
        `replication: limits.${key} must be a positive integer, not ${String(v)}.`,
      )
    }
    out[key as keyof PeerLimits] = v as number
  }
  return out
}

/** The parts of a change's metadata that list fields. */
const FIELD_LISTS = ['f', 'n', 'p', 'h'] as const

/**
 * Why a chunk breaks the per-document limits, or undefined. With `docJson`,
 * the JSON text it measured of each live document goes there, at the
 * change's index, for the store to check and keep instead of encoding it again.
 */
export function documentLimitProblem(
  changes: readonly RemoteChange[],
  limits: Required<PeerLimits>,
  docJson?: (string | undefined)[],
): string | undefined {
  for (let k = 0; k < changes.length; k++) {
    const c = changes[k]!
    const meta = c.meta as unknown as Record<string, unknown>
    let fields = 0
    for (const k of FIELD_LISTS) {
      const o = meta[k]
      if (o && typeof o === 'object') fields = Math.max(fields, Object.keys(o).length)
    }
    if (c.doc && typeof c.doc === 'object') fields = Math.max(fields, Object.keys(c.doc).length - 1)
    if (fields > limits.maxFieldsPerDocument) {
      return `document ${c.collection}/${c.id} has ${fields} fields (limit maxFieldsPerDocument ${limits.maxFieldsPerDocument})`
    }
    const content = c.doc ?? meta.h
    if (content !== undefined && content !== null) {
      const json = JSON.stringify(content)
      if (docJson && content === c.doc && typeof json === 'string') docJson[k] = json
      // A string's UTF-8 size is at most 3 bytes per UTF-16 unit.
      const bytes = json.length * 3 <= limits.maxDocumentBytes ? 0 : Buffer.byteLength(json)
      if (bytes > limits.maxDocumentBytes) {
        return `document ${c.collection}/${c.id} is ${bytes} bytes (limit maxDocumentBytes ${limits.maxDocumentBytes})`
      }
    }
  }
  return undefined
}

/**
 * The collections of a store, as far as received changes may create them.
 * Shared by every link of a replicator: a chunk that would bring the store
 * past the limit is refused whoever sends it.
 */
export class CollectionBudget {
  private known: Set<string> | undefined

  constructor(
    private readonly list: () => Promise<string[]>,
    private readonly max: number,
  ) {}

  /**
   * True when `admit` would read the store's collections for these changes
   * (one names a collection not known), or when one is not even shaped
   * like a change.
   */
  reads(changes: readonly RemoteChange[]): boolean {
    if (!this.known) return true
    for (const c of changes as readonly unknown[]) {
      if (typeof c !== 'object' || c === null) return true
      const name = (c as { collection?: unknown }).collection
      if (typeof name !== 'string' || !this.known.has(name)) return true
    }
    return false
  }

  /**
   * Reserves the chunk's new collections; returns why it cannot, or
   * undefined. Reads the store only when the chunk names a collection not
   * seen yet (a local write may have created it).
   */
  async admit(changes: readonly RemoteChange[]): Promise<string | undefined> {
    // A malformed name is left to the store's validation, which refuses it.
    const fresh = () => new Set(changes.map((c) => c.collection).filter((c) => !this.known?.has(c) && isCollection(c)))
    if (this.known && fresh().size === 0) return undefined
    this.known = new Set(await this.list())
    // Checked and reserved without awaiting: a concurrent chunk sees the reservation.
    const adding = fresh()
    if (adding.size === 0) return undefined
    if (this.known.size + adding.size > this.max) {
      const first = [...adding][0]
      return `${adding.size} new collection${adding.size === 1 ? '' : 's'} (${JSON.stringify(first)}${adding.size > 1 ? ', …' : ''}) would make ${this.known.size + adding.size} (limit maxCollections ${this.max})`
    }
    for (const c of adding) this.known.add(c)
    return undefined
  }
}

function isCollection(name: string): boolean {
  try {
    assertCollection(name)
    return true
  } catch {
    return false
  }
}

/**
 * A token bucket over changes: `take(n)` says how long to wait before
 * applying `n` changes so that the link stays within `rate` per second,
 * with `burst` allowed at once. A chunk larger than the burst waits for its
 * own share, never forever.
 */
export class ChangeRate {
  private tokens: number
  private at: number

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst
    this.at = now()
  }

  /** Takes `n` tokens (going into debt if needed) and returns the wait in ms before the debt is paid. */
  take(n: number): number {
    const t = this.now()
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.at) * this.rate) / 1000)
    this.at = t
    this.tokens -= n
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate)
  }
}
