import type { SyncRuntime } from './runtime.js'
import type { ScopeFollower } from './scope-follower.js'

/** How many kept documents are read from the mesh at once. */
const CHUNK = 500

/**
 * Applies again every document kept as parked or refused: a constraint may
 * hold now, a column may have been added, the config may have changed.
 * Each is read from the mesh as it is now. Returns how many were tried.
 */
export async function retryKept(rt: SyncRuntime, follower: ScopeFollower): Promise<number> {
  let tried = 0
  for (const b of rt.bindings.values()) {
    if (!b.receives) continue
    const kept = await rt.repository.parked({ model: b.model, limit: 100_000 })
    for (let i = 0; i < kept.length; i += CHUNK) {
      const ids = kept.slice(i, i + CHUNK).map((k) => k.id)
      // A kept upsert whose document left the mesh, or this device's scope, waits for nothing any more.
      const docs = await rt.mesh.find({ collection: b.collection, filter: { _id: { $in: ids } } })
      const live = new Set(docs.filter((d) => b.accepts(d, rt.context())).map((d) => d._id))
      const moot = kept.slice(i, i + CHUNK).filter((k) => k.op === 'upsert' && !live.has(k.id))
      if (moot.length > 0) {
        await rt.repository.transaction((tx) =>
          tx.unpark(
            b.model,
            moot.map((k) => k.id),
          ),
        )
      }
      await follower.reconcile(
        b.model,
        ids.filter((id) => !moot.some((k) => k.id === id)),
      )
    }
    tried += kept.length
  }
  return tried
}
