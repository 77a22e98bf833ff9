import { lstatSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

/** Total size of the files under `dir`, and the newest modification time. */
export function dirStats(dir: string): { sizeBytes: number; lastModifiedMs: number } {
  let sizeBytes = 0
  let lastModifiedMs = 0
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name)
      if (entry.isDirectory()) walk(p)
      else {
        try {
          const st = lstatSync(p)
          sizeBytes += st.size
          lastModifiedMs = Math.max(lastModifiedMs, st.mtimeMs)
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

export function dirSize(dir: string): number {
  try {
    return dirStats(dir).sizeBytes
  } catch {
    return 0
  }
}
