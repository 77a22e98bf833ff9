import { ErrorCode, MeshmirrorError, StorageError } from '../errors.js'

const HINTS: Record<string, string> = {
  ENOENT: 'it does not exist',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EEXIST: 'a file is in the way where a directory is expected',
  EACCES: 'permission denied; run as a user who may read and write it, or fix its permissions',
  EPERM: 'operation not permitted; check its permissions and attributes',
  EROFS: 'the file system is read-only',
  ENOSPC: 'the disk is full',
}

/** A file-system failure on `path`, as a `DIRECTORY_UNUSABLE` error that says what to do. */
export function directoryUnusable(path: string, action: string, cause: unknown): MeshmirrorError {
  if (cause instanceof MeshmirrorError) return cause
  const code = (cause as NodeJS.ErrnoException).code ?? ''
  const why = HINTS[code] ?? (cause as Error).message
  return new StorageError(
    ErrorCode.DIRECTORY_UNUSABLE,
    `Cannot ${action} ${path}: ${why}${code ? ` (${code})` : ''}.`,
    {
      cause,
      details: { dir: path, errno: code },
    },
  )
}
