import { accessSync, constants, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { ErrorCode, StorageError } from '../errors.js'
import { directoryUnusable } from './fs-errors.js'

/** The SQLite file whose exclusive lock marks a directory as in use. */
export const LOCK_FILE = 'meshmirror.lock'

/** An exclusive POSIX lock on `meshmirror.lock`, held through a SQLite connection. */
export interface KernelHold {
  db: Database.Database
  /** Identity of the locked file: if the path later names another file, the lock no longer guards it. */
  dev: number
  ino: number
}

const isBusy = (error: unknown) => {
  const code = (error as { code?: string }).code
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED'
}

/**
 * Takes the lock, or returns undefined at once when another connection holds
 * it. `locking_mode=EXCLUSIVE` plus a write makes SQLite keep its exclusive
 * fcntl lock until the connection closes; the kernel drops it when the
 * process dies, however it dies.
 */
export function lockKernel(dir: string): KernelHold | undefined {
  const file = join(dir, LOCK_FILE)
  let db: Database.Database | undefined
  try {
    db = new Database(file, { timeout: 0 })
    db.pragma('locking_mode = EXCLUSIVE')
    db.exec('BEGIN EXCLUSIVE')
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL)')
    db.prepare('DELETE FROM holder').run()
    db.prepare('INSERT INTO holder (pid) VALUES (?)').run(process.pid)
    db.exec('COMMIT')
    const st = statSync(file)
    return { db, dev: st.dev, ino: st.ino }
  } catch (error) {
    db?.close()
    if (isBusy(error)) return undefined
    // SQLite says only "unable to open database file": find the file-system reason.
    try {
      accessSync(dir, constants.W_OK | constants.X_OK)
    } catch (fsError) {
      throw directoryUnusable(dir, 'lock', fsError)
    }
    throw new StorageError(
      ErrorCode.DIRECTORY_UNUSABLE,
      `Cannot lock ${dir}: ${(error as Error).message}. Check that the directory exists and is writable.`,
      { cause: error, details: { dir } },
    )
  }
}

/**
 * Whether another connection holds the lock, found by a read: it writes
 * nothing, so probing does not change the directory's last-use time.
 */
export function kernelLockHeld(dir: string): boolean {
  const file = join(dir, LOCK_FILE)
  let db: Database.Database | undefined
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, timeout: 0 })
    db.prepare('SELECT count(*) FROM sqlite_master').get()
    return false
  } catch (error) {
    return isBusy(error)
  } finally {
    db?.close()
  }
}

/** Whether a hold still guards the file at the lock's path. */
export function kernelHoldIntact(dir: string, hold: KernelHold): string | undefined {
  if (!hold.db.open) return 'its lock connection was closed'
  try {
    const st = statSync(join(dir, LOCK_FILE))
    if (st.dev !== hold.dev || st.ino !== hold.ino) return `${LOCK_FILE} was replaced by another file`
    return undefined
  } catch {
    return `${LOCK_FILE} was removed`
  }
}
