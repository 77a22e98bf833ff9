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
