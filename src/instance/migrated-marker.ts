import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** Marker left in a directory whose documents were merged into another. */
export const MIGRATED_FILE = 'meshmirror.migrated.json'

export interface MigratedMarker {
  /** The directory the documents were merged into. */
  into: string
  at: string
  documents: number
}

export function readMigrated(dir: string): MigratedMarker | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, MIGRATED_FILE), 'utf8')) as MigratedMarker
    return typeof m.into === 'string' ? m : undefined
  } catch {
    return undefined
  }
}

/** Writes the marker atomically: a crash leaves either no marker or a whole one. */
export function markMigrated(dir: string, marker: MigratedMarker): void {
  const tmp = join(dir, `${MIGRATED_FILE}.${process.pid}.tmp`)
  writeFileSync(tmp, `${JSON.stringify(marker, null, 2)}\n`)
  renameSync(tmp, join(dir, MIGRATED_FILE))
}
