/**
 * Every error meshmirror raises is a {@link MeshmirrorError} with a stable
 * string `code`. Match on `code`, never on the message: messages explain what
 * happened and what to do, and may be reworded.
 *
 * @example
 * ```ts
 * try { await mesh.upsert('orders', docs) }
 * catch (e) { if (e instanceof MeshmirrorError && e.code === 'DOC_TOO_LARGE') shrink(docs) }
 * ```
 */

/** All stable error codes. */
export const ErrorCode = {
  /** A collection name is empty, too long, or uses characters outside `[A-Za-z0-9_]`. */
  INVALID_COLLECTION: 'INVALID_COLLECTION',
  /** A field name is reserved, empty, too long, or contains `.`, `$`, quotes or control characters. */
  INVALID_FIELD: 'INVALID_FIELD',
  /** A document id is missing, empty, too long, or not a string or finite number. */
  INVALID_ID: 'INVALID_ID',
  /** A document holds a value that is not JSON (function, NaN, BigInt, Date, undefined in an array, cycle…). */
  INVALID_DOCUMENT: 'INVALID_DOCUMENT',
  /** A document's JSON encoding is larger than the store's limit. */
  DOC_TOO_LARGE: 'DOC_TOO_LARGE',
  /** A query or filter is malformed (unknown operator, wrong operand type…). */
  INVALID_QUERY: 'INVALID_QUERY',
  /** A change cursor was not produced by this store, or is malformed. */
  INVALID_CURSOR: 'INVALID_CURSOR',
  /** A change received from another replica is malformed. */
  INVALID_CHANGE: 'INVALID_CHANGE',
  /** An operation expected a number (e.g. `increment` on a string field). */
  TYPE_MISMATCH: 'TYPE_MISMATCH',
  /** Options passed to an API are wrong (type, range, combination). */
  INVALID_OPTIONS: 'INVALID_OPTIONS',
  /** The store was closed; open it again. */
  STORE_CLOSED: 'STORE_CLOSED',
  /** The persistence directory holds data this version cannot read, or is not a mesh directory. */
  STORE_INCOMPATIBLE: 'STORE_INCOMPATIBLE',
  /** The persistence directory cannot be created, read or written. */
  DIRECTORY_UNUSABLE: 'DIRECTORY_UNUSABLE',
  /** Another process holds the persistence directory's lock. */
  LOCK_HELD: 'LOCK_HELD',
  /** A peer failed authentication (wrong secret, wrong mesh, protocol mismatch). */
  PEER_AUTH_FAILED: 'PEER_AUTH_FAILED',
  /** A peer sent something that violates the protocol. */
  PROTOCOL_ERROR: 'PROTOCOL_ERROR',
  /**
   * A peer sent more than this peer accepts from one peer (a document too
   * large or with too many fields, too many new collections), or reconnected
   * too soon after being dropped for it; the link was dropped.
   */
  PEER_LIMIT_EXCEEDED: 'PEER_LIMIT_EXCEEDED',
  /** The operation was aborted through its `AbortSignal`. */
  ABORTED: 'ABORTED',
  /** A model definition does not fit its table (no declared primary key, unknown column, bad name…). */
  INVALID_MODEL: 'INVALID_MODEL',
  /** A sync adapter is malformed or conflicts with another (same model or collection registered twice). */
  INVALID_ADAPTER: 'INVALID_ADAPTER',
  /** An adapter refused a document or record (missing fields, wrong types); it was counted and skipped. */
  DOCUMENT_REJECTED: 'DOCUMENT_REJECTED',
  /** The application's database cannot be opened, read or written. */
  DATABASE_UNUSABLE: 'DATABASE_UNUSABLE',
  /** An optional dependency a feature needs is not installed (e.g. `@dittolive/ditto` for `meshmirror/ditto`). */
  DEPENDENCY_MISSING: 'DEPENDENCY_MISSING',
  /** Sync cannot start: it needs a license token (option `licenseToken` or env `DITTO_LICENSE_TOKEN`). */
  LICENSE_REQUIRED: 'LICENSE_REQUIRED',
  /** The backend SDK failed; `details.backendCode` names its own error code. */
  BACKEND_ERROR: 'BACKEND_ERROR',
  /** A config file is missing, unreadable, or does not fit the schema; `details.key` names the key. */
  INVALID_CONFIG: 'INVALID_CONFIG',
  /** The address to listen on is taken by another process. */
  ADDRESS_IN_USE: 'ADDRESS_IN_USE',
  /** The NATS hub cannot be reached, refused the credentials, or has no JetStream; `details.servers` names it. */
  HUB_UNAVAILABLE: 'HUB_UNAVAILABLE',
  /** The NATS hub refused a subject to these credentials (its permissions); `details.subject` names it. */
  HUB_PERMISSION_DENIED: 'HUB_PERMISSION_DENIED',
} as const

/** Union of every stable error code. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** Extra, machine-readable facts about an error (the field, the id, the limit…). */
export type ErrorDetails = Readonly<Record<string, unknown>>

/** Base class of every error meshmirror throws. */
export class MeshmirrorError extends Error {
  readonly code: ErrorCode
  readonly details: ErrorDetails

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MeshmirrorError'
    this.code = code
    this.details = options.details ?? {}
  }

  /** A plain object for logs and `--json` output. */
  toJSON(): { name: string; code: ErrorCode; message: string; details: ErrorDetails } {
    return { name: this.name, code: this.code, message: this.message, details: this.details }
  }
}

/** Input (a document, a name, a query, options) was rejected before anything was written. */
export class ValidationError extends MeshmirrorError {
  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(code, message, options)
    this.name = 'ValidationError'
  }
}

/** A query or filter is malformed. Code `INVALID_QUERY`. */
export class QueryError extends ValidationError {
  constructor(message: string, details: ErrorDetails = {}) {
    super(ErrorCode.INVALID_QUERY, message, { details })
    this.name = 'QueryError'
  }
}

/** The store (or another resource) was used after `close()`. Code `STORE_CLOSED`. */
export class ClosedError extends MeshmirrorError {
  constructor(what: string) {
    super(ErrorCode.STORE_CLOSED, `${what} is closed; open it again before using it.`)
    this.name = 'ClosedError'
  }
}

/** The persistence directory or its files cannot be used. */
export class StorageError extends MeshmirrorError {
  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(code, message, options)
    this.name = 'StorageError'
  }
}

/** Who holds a persistence directory, as far as its owner record tells. */
export interface LockHolder {
  pid: number
  hostname: string
  command: string
  acquiredAt: string
  /** False when the holder is known to be gone (its lock is then taken over). */
  alive?: boolean
}

/** Another process holds the persistence directory. Code `LOCK_HELD`. */
export class LockHeldError extends MeshmirrorError {
  readonly holder: LockHolder | undefined
  constructor(dir: string, holder: LockHolder | undefined, waitedMs: number) {
    const who = holder
      ? `process ${holder.pid} on ${holder.hostname} (${holder.command}), since ${holder.acquiredAt}`
      : 'another process (no owner record)'
    super(
      ErrorCode.LOCK_HELD,
      `The mesh directory ${dir} is in use by ${who}; waited ${Math.round(waitedMs)} ms. ` +
        'Stop that process, or open with onLocked: "wait" and a longer lockTimeoutMs, or use another directory (strategy "unique"). ' +
        `\`meshmirror doctor --dir ${dir}\` shows the details.`,
      { details: { dir, holder, waitedMs } },
    )
    this.name = 'LockHeldError'
    this.holder = holder
  }
}

/** The operation was aborted. Code `ABORTED`. */
export class AbortError extends MeshmirrorError {
  constructor(reason?: unknown) {
    super(ErrorCode.ABORTED, 'The operation was aborted.', { cause: reason })
    this.name = 'AbortError'
  }
}

/** True when `error` is a meshmirror error with the given code. */
export function hasCode(error: unknown, code: ErrorCode): error is MeshmirrorError {
  return error instanceof MeshmirrorError && error.code === code
}
