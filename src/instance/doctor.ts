import { existsSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { SCHEMA_VERSION, STORE_FILE } from '../engine/database.js'
import { describeDir, isMeshDir, type MeshDirInfo } from './dirs.js'

/** What `meshmirror doctor` finds in a directory. */
export interface Diagnosis {
  dir: string
  exists: boolean
  isMesh: boolean
  info?: MeshDirInfo
  /** The store's on-disk format version, when readable. */
  storeVersion?: string
  /** True when the directory can be opened now. */
  ok: boolean
  /** Plain-language findings, most important first. */
  findings: string[]
}

/** Examines a directory without changing it. */
export function diagnose(dirInput: string): Diagnosis {
  const dir = resolve(dirInput)
  if (!existsSync(dir)) return { dir, exists: false, isMesh: false, ok: false, findings: [`${dir} does not exist.`] }
  if (!statSync(dir).isDirectory()) {
    return { dir, exists: true, isMesh: false, ok: false, findings: [`${dir} is a file, not a directory.`] }
  }
  if (!isMeshDir(dir)) {
    return {
      dir,
      exists: true,
      isMesh: false,
      ok: false,
      findings: [`${dir} holds no meshmirror store; opening it would create a new, empty one.`],
    }
  }
  const info = describeDir(dir)
  const d: Diagnosis = { dir: info.dir, exists: true, isMesh: true, info, ok: true, findings: [] }
  const owner = info.owner
  if (info.lock === 'held') {
    d.ok = false
    d.findings.push(
      owner
        ? `In use by process ${owner.pid} on ${owner.hostname} (${owner.command}) since ${owner.acquiredAt}${
            owner.alive === false ? ', which is no longer running: its lock will be taken over on the next open' : ''
          }. Stop that process to open the directory here.`
        : 'In use by another process that left no owner record.',
    )
  } else if (info.lock === 'held-by-this-process') {
    d.findings.push('Open in this process.')
  } else {
    d.findings.push('Free: it can be opened now.')
    if (owner) {
      d.findings.push(
        `The last holder, process ${owner.pid} on ${owner.hostname}, ended without closing (a crash or a kill); no data written before its last commit is lost.`,
      )
    }
  }
  if (existsSync(join(dir, STORE_FILE))) {
    try {
      const db = new Database(join(dir, STORE_FILE), { readonly: true, fileMustExist: true })
      const row = db.prepare("SELECT value FROM store_meta WHERE key = 'schema_version'").get() as
        | { value: string }
        | undefined
      db.close()
      if (row) d.storeVersion = row.value
      if (row && Number(row.value) !== SCHEMA_VERSION) {
        d.ok = false
        d.findings.push(`Store format ${row.value}; this meshmirror reads format ${SCHEMA_VERSION}.`)
      }
    } catch (error) {
      d.ok = false
      d.findings.push(`The store file cannot be read: ${(error as Error).message}.`)
    }
  } else {
    d.findings.push('No store file yet (the directory was locked but never written).')
  }
  if (info.migrated) d.findings.push(`Its documents were merged into ${info.migrated.into} on ${info.migrated.at}.`)
  return d
}
