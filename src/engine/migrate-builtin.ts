import type { MigrationProgress } from '../instance/mesh-engine.js'
import { openBuiltinStore } from './open-builtin-store.js'
import type { BuiltinMesh } from './types.js'

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
  const source = await openBuiltinStore({ dir: sourceDir })
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
