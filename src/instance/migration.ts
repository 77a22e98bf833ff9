import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openMesh } from '../engine/open-mesh.js'
import type { BuiltinMesh } from '../engine/types.js'
import type { MigrationProgress } from './mesh-engine.js'

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

/**
 * Merges every document of a builtin store into `target`, chunk by chunk.
 * Each chunk is applied in one transaction together with the source's
 * cursor, so a crash resumes after the last applied chunk, and CRDT merge
 * makes a repeated chunk a no-op.
 */
export async function migrateBuiltin(
  sourceDir: string,
  target: BuiltinMesh,
  options: { chunkSize: number; onProgress?: (p: MigrationProgress) => void },
): Promise<{ documents: number; resumedFrom: number }> {
  const source = await openMesh({ dir: sourceDir })
  try {
    const from = `migrate-${source.siteId}`
    const resumedFrom = await target.peerCursor(from)
    let after = resumedFrom
    let documents = 0
    for (;;) {
      // An empty version vector: everything the source holds, whoever wrote it.
      const chunk = await source.changesFor({}, after, options.chunkSize)
      const opts = chunk.complete
        ? { from, cursor: chunk.cursor, versionVector: chunk.versionVector }
        : { from, cursor: chunk.cursor }
      await target.applyRemote(chunk.changes, opts)
      documents += chunk.changes.length
      after = chunk.cursor
      options.onProgress?.({ source: sourceDir, documents })
      if (chunk.complete) break
    }
    return { documents, resumedFrom }
  } finally {
    await source.close()
  }
}
