import { BuiltinMeshStore } from './builtin-mesh.js'
import type { BuiltinMesh, EncodedChunk, VersionVector } from './types.js'

/**
 * `mesh.changesFor`, each change as the JSON text of its `RemoteChange`. A
 * store of this engine puts the texts together from the JSON it stores,
 * without parsing and encoding every document again (most of a sender's work
 * in a catch-up); any other `BuiltinMesh` gets its changes encoded.
 */
export async function encodedChanges(
  mesh: BuiltinMesh,
  peerVersionVector: VersionVector,
  after: number,
  limit: number,
): Promise<EncodedChunk> {
  if (mesh instanceof BuiltinMeshStore) return mesh.encodedChangesFor(peerVersionVector, after, limit)
  const chunk = await mesh.changesFor(peerVersionVector, after, limit)
  return { ...chunk, changes: chunk.changes.map((c) => JSON.stringify(c)) }
}

/**
 * `encodedChanges` without reading the store, when its last commits hold
 * all of it (see `BuiltinMeshStore.recentChangesFor`): a live link sends a
 * change as it was committed. Undefined otherwise.
 */
export function recentEncodedChanges(
  mesh: BuiltinMesh,
  peerVersionVector: VersionVector,
  after: number,
  limit: number,
): EncodedChunk | undefined {
  return mesh instanceof BuiltinMeshStore ? mesh.recentChangesFor(peerVersionVector, after, limit) : undefined
}
