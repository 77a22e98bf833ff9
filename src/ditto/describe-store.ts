import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { StoreDescription } from '../instance/mesh-engine.js'
import { CHANGE_LOG_FILE } from './change-log.js'
import { lockHolder } from './open-ditto.js'

/** Where Ditto records its format version: present in every Ditto directory. */
export const DITTO_VERSION_FILE = '__ditto_version.txt'

/** True when `dir` holds a Ditto store. Reads no Ditto file and loads no SDK. */
export function isDittoDir(dir: string): boolean {
  return existsSync(join(dir, DITTO_VERSION_FILE)) || existsSync(join(dir, 'ditto_store'))
}

/**
 * A Ditto directory as `diagnose` reports it, read without opening Ditto or
 * loading its SDK: Ditto's format version, the site id of meshmirror's
 * change log beside it, and a plain Ditto process that holds it (Ditto's
 * own lock file names its pid; meshmirror's lock does not cover it).
 */
export function describeDittoStore(dir: string): StoreDescription {
  if (!isDittoDir(dir)) return { empty: true }
  const out: StoreDescription = {}
  try {
    const version = readFileSync(join(dir, DITTO_VERSION_FILE), 'utf8').trim()
    out.version = `ditto ${version}`
  } catch {
    // An older layout without the version file: nothing to report.
  }
  const site = readSite(join(dir, CHANGE_LOG_FILE))
  if (site !== undefined) out.siteId = site
  const holder = lockHolder(dir)
  if (holder?.alive && holder.pid !== process.pid) out.heldBy = holder
  return out
}

function readSite(file: string): string | undefined {
  if (!existsSync(file)) return undefined
  let db: Database.Database | undefined
  try {
    db = new Database(file, { readonly: true, fileMustExist: true })
    const row = db.prepare("SELECT value FROM meta WHERE key = 'site'").get() as { value: string } | undefined
    return row?.value
  } catch {
    return undefined
  } finally {
    db?.close()
  }
}
