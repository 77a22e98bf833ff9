import type { AdapterBinding } from './adapter-binding.js'
import type { CatchUpReport } from './catch-up.js'
import { retryKept } from './kept-retry.js'
import type { OutboxDrain } from './outbox-drain.js'
import type { SyncRuntime } from './runtime.js'
import type { ScopeFollower } from './scope-follower.js'
import { type SeedReport, seed } from './seeder.js'

/** What startup did. */
export interface StartupReport {
  /** True when the mesh is not the one the sync state was recorded against (a new directory): everything was re-exchanged. */
  meshReplaced: boolean
  catchUp: Record<string, CatchUpReport>
  /** Documents kept as parked or refused by earlier runs, applied again. */
  retried: number
  /** Captured local changes sent. */
  drained: number
  seeded: Record<string, SeedReport>
  /** From start() to live, in ms. */
  durationMs: number
}

/** The parts of a coordinator that startup drives. */
export interface StartupParts {
  readonly rt: SyncRuntime
  /** The coordinator's adapters by model; startup puts them in apply order. */
  readonly bindings: Map<string, AdapterBinding>
  readonly follower: ScopeFollower
  readonly drain: OutboxDrain
  /** Throws an `AbortError` when startup is to stop (the caller's signal, or close()); called between steps. */
  readonly checkpoint: () => void
}

const MESH_SITE_KEY = 'mesh-site'

/**
 * Brings the repository and the mesh in step, in this order: catch up with
 * what the mesh changed while sync was off, apply again what earlier runs
 * kept, send the local changes captured meanwhile, seed rows never
 * exchanged. What it leaves to the caller is going live. `durationMs` is the
 * caller's to fill in.
 */
export async function bringUpToDate(parts: StartupParts): Promise<StartupReport> {
  const { rt, follower, drain, checkpoint } = parts
  const repo = rt.repository
  const meshReplaced = await adoptMesh(rt)
  orderParentsFirst(parts.bindings, repo.models())
  if (repo.capturesChanges) for (const b of rt.bindings.values()) await repo.setChangeCapture(b.model, b.sends)
  checkpoint()
  const catchUp = await catchUpAll(parts)
  await rt.queue.idle()
  checkpoint()
  const retried = await retryKept(rt, follower)
  await rt.queue.idle()
  checkpoint()
  const drained = await drain.drainAll((done, total) => rt.events.emit('progress', { phase: 'drain', done, total }))
  const seeded = await seedAll(parts)
  await rt.queue.idle()
  checkpoint()
  return { meshReplaced, catchUp, retried, drained, seeded, durationMs: 0 }
}

/**
 * Records which mesh the sync state is kept against. A different mesh (a
 * fresh directory) holds none of what the sync state says was exchanged:
 * the state is cleared, so everything is exchanged again. Returns whether
 * the mesh was replaced.
 */
async function adoptMesh(rt: SyncRuntime): Promise<boolean> {
  const { mesh, repository: repo } = rt
  const site = await repo.checkpoint(MESH_SITE_KEY)
  if (site === mesh.siteId) return false
  await repo.transaction(async (tx) => {
    if (site !== undefined) await tx.clearSyncState()
    await tx.setCheckpoint(MESH_SITE_KEY, mesh.siteId)
  })
  rt.states.reset()
  if (site !== undefined) rt.logger.warn('the mesh changed since the last run; exchanging everything again')
  return site !== undefined
}

/** Parents before children (foreign keys): catch-up and seeding then bring parents first. */
function orderParentsFirst(bindings: Map<string, AdapterBinding>, order: readonly string[]): void {
  const rank = (b: AdapterBinding) => {
    const i = order.indexOf(b.model)
    return i < 0 ? order.length : i
  }
  const sorted = [...bindings.values()].sort((a, b) => rank(a) - rank(b))
  bindings.clear()
  for (const b of sorted) bindings.set(b.model, b)
}

/** Scopes each adapter and follows its mesh collection, catching up first unless the settings or the adapter say not to. */
async function catchUpAll({ rt, follower, checkpoint }: StartupParts): Promise<Record<string, CatchUpReport>> {
  const out: Record<string, CatchUpReport> = {}
  for (const b of rt.bindings.values()) b.updateScope(rt.context())
  const catchUpWanted = !rt.settings.skipInitialFetch
  for (const b of rt.bindings.values()) {
    checkpoint()
    if (!b.receives) continue
    if (catchUpWanted && b.adapter.hydrateOnStartup !== false) {
      out[b.model] = await follower.follow(b, true, (done) =>
        rt.events.emit('progress', { phase: 'catch-up', model: b.model, done }),
      )
    } else {
      await follower.follow(b, false)
    }
  }
  return out
}

/** Seeds each adapter's rows never exchanged with the mesh. */
async function seedAll({ rt, follower, checkpoint }: StartupParts): Promise<Record<string, SeedReport>> {
  const out: Record<string, SeedReport> = {}
  for (const b of rt.bindings.values()) {
    checkpoint()
    out[b.model] = await seed(rt, b, follower.reconcile, (done, total) =>
      rt.events.emit('progress', { phase: 'seed', model: b.model, done, total }),
    )
  }
  return out
}
