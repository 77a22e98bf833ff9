import { randomBytes, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import { ErrorCode, ValidationError } from '../errors.js'

/** Where the dashboard listens, and the token it asks for. */
export interface DashboardOptions {
  /** Default `127.0.0.1`. Any address other than a loopback one requires a token. */
  host?: string
  /** 0 picks a free port. */
  port: number
  /**
   * The token a browser must present (at least 16 characters). Required off
   * loopback: when it is not given there, one is generated (see
   * `RunningDashboard.token`). On loopback, a given token is required too.
   */
  token?: string
}

/** True for an address only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h === '::1') return true
  return isIP(h) === 4 && h.startsWith('127.')
}

/** Reads `[host:]port` as the `--dashboard` option writes it. */
export function parseDashboardAddress(text: string): { host?: string; port: number } {
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(\d{1,5})$/.exec(text.trim())
  const port = m ? Number(m[2]) : Number.NaN
  if (!m || port > 65535) {
    throw new ValidationError(
      ErrorCode.INVALID_OPTIONS,
      `--dashboard ${JSON.stringify(text)}: expected [host:]port, e.g. 8080 or 0.0.0.0:8080`,
      { details: { value: text } },
    )
  }
  return m[1] ? { host: m[1].replace(/^\[|\]$/g, ''), port } : { port }
}

/** Checks a dashboard's options (`INVALID_OPTIONS`), without listening. */
export function checkDashboardOptions(options: DashboardOptions): void {
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, `dashboard port ${options.port}: expected 0-65535`, {
      details: { port: options.port },
    })
  }
  if (options.token !== undefined && options.token.length < 16) {
    throw new ValidationError(
      ErrorCode.INVALID_OPTIONS,
      'dashboard token: expected at least 16 characters (or leave it out to have one generated)',
    )
  }
}

/** The host and token a dashboard runs with, checked: off loopback a token is always set. */
export function resolveAccess(options: DashboardOptions): {
  host: string
  port: number
  token?: string
  generated: boolean
} {
  checkDashboardOptions(options)
  const host = options.host ?? '127.0.0.1'
  if (options.token !== undefined) return { host, port: options.port, token: options.token, generated: false }
  if (isLoopback(host)) return { host, port: options.port, generated: false }
  return { host, port: options.port, token: randomBytes(18).toString('base64url'), generated: true }
}

/** Compares a presented token with the expected one in constant time. */
export function tokenMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false
  const a = Buffer.from(expected)
  const b = Buffer.from(presented)
  return a.length === b.length && timingSafeEqual(a, b)
}
