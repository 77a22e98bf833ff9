import { randomBytes } from 'node:crypto'
import { readdirSync, realpathSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

/**
 * The per-run directory name of the `unique` strategy:
 * `<name>_<YYYYMMDD>_<HHMMSS>_<pid>_<random>` (UTC), which sorts by time.
 */
export function uniqueDirName(name: string, now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15)
  return `${name}_${stamp}_${process.pid}_${randomBytes(4).toString('hex')}`
}

/**
 * Names of directories left beside `<name>` by a per-run strategy: ours
 * (`<name>_<date>_<time>_<pid>_<random>`) and the lock-fix seed's
 * (`<name>_<timestamp>_<n>`). `<name>_backup` and the like do not match.
 */
export function uniqueNamePattern(name: string): RegExp {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return new RegExp(`^${escaped}(_\\d+)+(_[a-z0-9]+)?$`)
}

/** Directories beside `dir` named by a per-run strategy, as absolute real paths, oldest name first. */
export function uniqueSiblings(dir: string): string[] {
  const parent = dirname(dir)
  const pattern = uniqueNamePattern(basename(dir))
  let entries: import('node:fs').Dirent[]
  try {
    entries = readdirSync(parent, { withFileTypes: true })
  } catch {
    return []
  }
  return entries
    .filter((e) => e.isDirectory() && pattern.test(e.name))
    .map((e) => realpathSync(join(parent, e.name)))
    .sort()
}
