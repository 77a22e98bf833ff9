import { ErrorCode, MeshmirrorError, StorageError } from '../errors.js'

const WHY: Record<string, string> = {
  SQLITE_FULL: 'the disk is full',
  SQLITE_READONLY: 'the store file is read-only',
  SQLITE_CANTOPEN: 'the store file cannot be opened',
}

/**
 * A failed write of the store as a `DIRECTORY_UNUSABLE` error when the file
 * system is the cause (full, read-only, an I/O error); other errors as they
 * are. The transaction was rolled back: nothing of it was written.
 */
export function storeWriteError(dir: string, error: unknown): unknown {
  if (error instanceof MeshmirrorError) return error
  const code = (error as { code?: unknown }).code
  if (typeof code !== 'string') return error
  const base = code.replace(/_[A-Z]+$/, '')
  const why = WHY[code] ?? WHY[base] ?? (base === 'SQLITE_IOERR' ? 'an I/O error' : undefined)
  if (why === undefined) return error
  return new StorageError(
    ErrorCode.DIRECTORY_UNUSABLE,
    `Cannot write the mesh store in ${dir}: ${why} (${code}); nothing of this write was kept.`,
    { cause: error, details: { dir, sqliteCode: code } },
  )
}
