import { lstatSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Total size of the files under `dir`, and the newest modification time of
 * the store's files: meshmirror's own files (`meshmirror.*`: lock, owner
 * record, markers) do not count, so probing, locking or migrating a
 * directory does not make it look used. The directory's own time stands in
 * when it holds no other file. Subdirectories that cannot be read are left
 * out rather than failing the whole walk.
 */
export function dirStats(dir: string): { sizeBytes: number; lastModifiedMs: number } {
  let sizeBytes = 0
  let lastModifiedMs = 0
  const walk = (d: string) => {
    let entries: import('node:fs').Dirent[]
    try {
      entries = readdirSync(d, { withFileTypes: true })
    } catch (error) {
      if (d === dir) throw error
      return
    }
    for (const entry of entries) {
      const p = join(d, entry.name)
      if (entry.isDirectory()) walk(p)
      else {
        try {
          const st = lstatSync(p)
          sizeBytes += st.size
          if (!entry.name.startsWith('meshmirror.')) lastModifiedMs = Math.max(lastModifiedMs, st.mtimeMs)
        } catch {
          // Removed while walking.
        }
      }
    }
  }
  walk(dir)
  if (lastModifiedMs === 0) lastModifiedMs = lstatSync(dir).mtimeMs
  return { sizeBytes, lastModifiedMs }
}

/** Total size of the files under `dir`; 0 when it cannot be read. */
export function dirSize(dir: string): number {
  try {
    return dirStats(dir).sizeBytes
  } catch {
    return 0
  }
}
