import { openBuiltinStore } from '../engine/open-builtin-store.js'
import type { BuiltinMesh, OpenMeshOptions } from '../engine/types.js'
import { type ReplicationOptions, type Replicator, startReplication } from './replicator.js'

/** Where the store lives (`OpenMeshOptions`) and how it replicates (`ReplicationOptions`). */
export type OpenReplicatedMeshOptions = OpenMeshOptions & ReplicationOptions

/** A builtin mesh with its replication running; closing it disconnects peers first. */
export type ReplicatedMesh = BuiltinMesh & { readonly replication: Replicator }

/**
 * Opens (creating if needed) a builtin mesh store in a persistence
 * directory, and replicates it with its peers when `meshId` and `secret` are
 * given: one call for a local store or a replicated one.
 *
 * @example
 * ```ts
 * // A local store.
 * await using local = await openMesh({ dir: './pos-mesh' })
 *
 * // A replicated one: listens for peers and dials one.
 * await using mesh = await openMesh({
 *   dir: './pos-mesh', meshId: 'shop-42', secret: process.env.MESH_SECRET!,
 *   listen: { host: '0.0.0.0', port: 4040 }, peers: ['ws://10.0.0.12:4040'],
 * })
 * mesh.replication.on('peer', (p) => console.log(p.site, p.state, p.lag))
 * ```
 */
export function openMesh(options: OpenReplicatedMeshOptions): Promise<ReplicatedMesh>
export function openMesh(options: OpenMeshOptions): Promise<BuiltinMesh>
export function openMesh(options: OpenMeshOptions & Partial<ReplicationOptions>): Promise<BuiltinMesh> {
  const o = options ?? ({} as OpenMeshOptions & Partial<ReplicationOptions>)
  const replicated = o.meshId !== undefined || o.secret !== undefined || o.listen !== undefined || o.peers !== undefined
  // Replication options without a mesh id or secret are refused by startReplication, naming what is missing.
  return replicated ? openReplicatedMesh(o as OpenReplicatedMeshOptions) : openBuiltinStore(options)
}

/** Opens a builtin mesh and replicates it. `openMesh` does the same when given `meshId` and `secret`. */
export async function openReplicatedMesh(options: OpenReplicatedMeshOptions): Promise<ReplicatedMesh> {
  const mesh = await openBuiltinStore(options)
  let replication: Replicator
  try {
    replication = await startReplication(mesh, options)
  } catch (error) {
    await mesh.close()
    throw error
  }
  return withReplication(mesh, replication)
}

/** Ties a replicator to its mesh: `close()` stops replication, then closes the store. */
export function withReplication(mesh: BuiltinMesh, replication: Replicator): ReplicatedMesh {
  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= (async () => {
      try {
        await replication.close()
      } finally {
        await mesh.close()
      }
    })()
    return closing
  }
  // Each method bound once, not on every call (a write's path starts here).
  const bound = new Map<PropertyKey, { method: unknown; fn: unknown }>()
  return new Proxy(mesh as ReplicatedMesh, {
    has: (target, prop) => prop === 'replication' || Reflect.has(target, prop),
    get(target, prop) {
      if (prop === 'replication') return replication
      if (prop === 'close') return close
      if (prop === Symbol.asyncDispose) return close
      const value = Reflect.get(target, prop, target)
      if (typeof value !== 'function') return value
      const known = bound.get(prop)
      if (known !== undefined && known.method === value) return known.fn
      const fn = value.bind(target)
      bound.set(prop, { method: value, fn })
      return fn
    },
  })
}
