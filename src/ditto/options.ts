import { ErrorCode, ValidationError } from '../errors.js'
import type { Logger } from '../logger.js'

/** Ditto's log levels, or `off` (the default: nothing on the console). */
export type DittoLogLevel = 'off' | 'Error' | 'Warning' | 'Info' | 'Debug' | 'Verbose'

/** Which transports sync uses. Applied at open; they carry data only once sync runs. */
export interface DittoTransports {
  /** LAN peer-to-peer with mDNS and multicast discovery. Default true. */
  lan?: boolean
  /** Bluetooth LE. Default false. */
  bluetooth?: boolean
  /** Accept TCP connections on this address. */
  tcpListen?: { interfaceIP?: string; port: number }
  /** Connect to these `host:port` TCP peers. */
  tcpConnect?: readonly string[]
  /** Connect to these `wss://` servers. */
  websocketConnect?: readonly string[]
}

/** Options of a Ditto-backed mesh store. */
export interface DittoMeshOptions {
  /** Ditto database id (a UUID); peers sync only within one. Default: Ditto's default id. */
  databaseId?: string
  /**
   * Offline license token; without it the store works locally and sync does
   * not start. Default: env `DITTO_LICENSE_TOKEN`.
   */
  licenseToken?: string
  /** Shared secret that authenticates and encrypts peer connections (small peers only). */
  sharedKey?: string
  transports?: DittoTransports
  /** Start sync at open when a license token is present. Default true. */
  sync?: boolean
  /** Fields that are counters, per collection (learned from `increment` otherwise). */
  counterFields?: Readonly<Record<string, readonly string[]>>
  /** `delete` (default): tombstones that sync. `evict`: local removal only. */
  removeWith?: 'delete' | 'evict'
  /** Ditto's console log level. Default `off`. Process-wide (Ditto's logger is global). */
  logLevel?: DittoLogLevel
  /**
   * Ditto's always-on debug log files (`ditto_logs/` in the directory).
   * Default true (Ditto's default). `false` turns them off; Ditto reads this
   * when the SDK loads, so the first open of the process decides (as does
   * env `DITTO_DISABLE_ALWAYS_DEBUG_ON_DISK_LOGS=1`).
   */
  diskLogs?: boolean
  /** Largest accepted document, in bytes of JSON. Default 1 MiB. */
  maxDocumentBytes?: number
  /** How long to wait for a directory another Ditto process holds. Default 10,000 ms. */
  lockTimeoutMs?: number
  /** Cancels a wait for the directory (code `ABORTED`). */
  signal?: AbortSignal
  logger?: Logger
}

const LEVELS = new Set(['off', 'Error', 'Warning', 'Info', 'Debug', 'Verbose'])
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Checks options before anything is opened. Throws `INVALID_OPTIONS`. */
export function checkDittoOptions(o: DittoMeshOptions): void {
  const bad = (what: string) => new ValidationError(ErrorCode.INVALID_OPTIONS, `Ditto mesh options: ${what}.`)
  if (typeof o !== 'object' || o === null) throw bad('options must be an object')
  if (o.databaseId !== undefined && !(typeof o.databaseId === 'string' && UUID.test(o.databaseId))) {
    throw bad('databaseId must be a UUID string')
  }
  if (o.licenseToken !== undefined && typeof o.licenseToken !== 'string') throw bad('licenseToken must be a string')
  if (o.logLevel !== undefined && !LEVELS.has(o.logLevel))
    throw bad(`logLevel must be one of ${[...LEVELS].join(', ')}`)
  if (o.removeWith !== undefined && o.removeWith !== 'delete' && o.removeWith !== 'evict') {
    throw bad("removeWith must be 'delete' or 'evict'")
  }
  if (o.maxDocumentBytes !== undefined && !(Number.isSafeInteger(o.maxDocumentBytes) && o.maxDocumentBytes >= 64)) {
    throw bad('maxDocumentBytes must be an integer of at least 64')
  }
  if (o.lockTimeoutMs !== undefined && !(o.lockTimeoutMs >= 0)) throw bad('lockTimeoutMs must be a number >= 0')
  if (o.diskLogs !== undefined && typeof o.diskLogs !== 'boolean') throw bad('diskLogs must be a boolean')
  const c = o.counterFields
  if (c !== undefined) {
    if (typeof c !== 'object' || c === null) throw bad('counterFields must map collections to field lists')
    for (const fields of Object.values(c)) {
      if (!Array.isArray(fields) || !fields.every((f) => typeof f === 'string')) {
        throw bad('counterFields must map collections to arrays of field names')
      }
    }
  }
  const t = o.transports
  if (t?.tcpListen && !(Number.isInteger(t.tcpListen.port) && t.tcpListen.port >= 0 && t.tcpListen.port < 65536)) {
    throw bad('transports.tcpListen.port must be a port number')
  }
}
