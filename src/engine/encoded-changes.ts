import { BuiltinMeshStore } from './builtin-mesh.js'
import type {
  ApplyRemoteOptions,
  ApplyRemoteResult,
  BuiltinMesh,
  EncodedChunk,
  RemoteChange,
  VersionVector,
} from './types.js'

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
 * How many write transactions a store of this engine has committed
 * (otherwise undefined): while it stays the same, `encodedChanges` reads the
 * same for the same arguments.
 */
export function commitCount(mesh: BuiltinMesh): number | undefined {
  return mesh instanceof BuiltinMeshStore ? mesh.commitCount() : undefined
}

/**
 * `mesh.applyRemote`, given `JSON.stringify` of each change's document where
 * the caller measured it already (`docJson[k]` for `changes[k].doc`, from
 * the same unchanged object): a store of this engine checks and stores that
 * text instead of encoding every document again.
 */
export function applyMeasured(
  mesh: BuiltinMesh,
  changes: readonly RemoteChange[],
  options: ApplyRemoteOptions,
  docJson: readonly (string | undefined)[],
): Promise<ApplyRemoteResult> {
  if (mesh instanceof BuiltinMeshStore) return mesh.applyMeasured(changes, options, docJson)
  return mesh.applyRemote(changes, options)
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
