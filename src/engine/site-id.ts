import { randomBytes } from 'node:crypto'
import { ErrorCode, ValidationError } from '../errors.js'
import type { SiteId } from './types.js'

const SITE_RE = /^[A-Za-z0-9_-]{1,64}$/

/** True when `s` can be a site id. */
export function isSiteId(s: unknown): s is SiteId {
  return typeof s === 'string' && SITE_RE.test(s)
}

/** Checks a user-given site id. Throws `INVALID_OPTIONS`. */
export function toSiteId(s: unknown): SiteId {
  if (!isSiteId(s)) {
    throw new ValidationError(
      ErrorCode.INVALID_OPTIONS,
      `Invalid siteId ${JSON.stringify(String(s))}: use 1-64 characters from [A-Za-z0-9_-].`,
    )
  }
  return s
}

/** A fresh random site id (16 hex digits). */
export function newSiteId(): SiteId {
  return randomBytes(8).toString('hex') as SiteId
}
