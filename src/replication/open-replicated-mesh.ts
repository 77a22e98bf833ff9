import { openMesh } from '../engine/open-mesh.js'
import type { BuiltinMesh, OpenMeshOptions } from '../engine/types.js'
import { type ReplicationOptions, type Replicator, startReplication } from './replicator.js'

export type OpenReplicatedMeshOptions = OpenMeshOptions & ReplicationOptions

/** A builtin mesh with its replication running; closing it disconnects peers first. */
export type ReplicatedMesh = BuiltinMesh & { readonly replication: Replicator }

/**
 * Opens a builtin mesh and replicates it, in one call.
 *
 * @example
 * ```ts
 * await using mesh = await openReplicatedMesh({
 *   dir: './pos-mesh', meshId: 'shop-42', secret: process.env.MESH_SECRET!,
 *   listen: { host: '0.0.0.0', port: 4040 }, peers: ['ws://10.0.0.12:4040'],
 * })
 * mesh.replication.on('peer', (p) => console.log(p.site, p.state))
 * ```
 */
export async function openReplicatedMesh(options: OpenReplicatedMeshOptions): Promise<ReplicatedMesh> {
  const mesh = await openMesh(options)
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
  const close = async () => {
    await replication.close()
    await mesh.close()
  }
  return new Proxy(mesh as ReplicatedMesh, {
    get(target, prop) {
      if (prop === 'replication') return replication
      if (prop === 'close') return close
      if (prop === Symbol.asyncDispose) return close
      const value = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}
