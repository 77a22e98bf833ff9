import { existsSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { StoreDescription } from '../instance/mesh-engine.js'
import { SCHEMA_VERSION, STORE_FILE } from './database.js'

/** The builtin store's format version and site id, read only; `problem` when this meshmirror cannot read it. */
export function describeBuiltinStore(dir: string): StoreDescription {
  const file = join(dir, STORE_FILE)
  if (!existsSync(file)) return { empty: true }
  const out: StoreDescription = {}
  let db: Database.Database | undefined
  try {
    db = new Database(file, { readonly: true, fileMustExist: true })
    const meta = new Map(
      (db.prepare('SELECT key, value FROM store_meta').all() as { key: string; value: string }[]).map((r) => [
        r.key,
        r.value,
      ]),
    )
    const version = meta.get('schema_version')
    if (version !== undefined) out.version = version
    const site = meta.get('site_id')
    if (site !== undefined) out.siteId = site
    if (Number(version) !== SCHEMA_VERSION) {
      out.problem = `Store format ${version ?? 'unknown'}; this meshmirror reads format ${SCHEMA_VERSION}.`
    }
  } catch (error) {
    out.problem = `The store file cannot be read: ${(error as Error).message}.`
  } finally {
    db?.close()
  }
  return out
}
