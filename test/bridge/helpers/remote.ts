import { join } from 'node:path'
import type { DittoMesh } from '../../../src/ditto/index.js'
import { type BuiltinMesh, type Document, type MeshStore, openMesh } from '../../../src/index.js'
import { MeshLink } from './mesh-link.js'
import type { MeshBackend } from './node.js'

/**
 * Another site's changes reaching a device's mesh, written outside its
 * coordinator. Builtin: the site is a mesh of its own, replicated in by
 * `MeshLink`. Ditto: the changes go straight into the Ditto store with DQL,
 * as Ditto sync applies them, and fire its observers the same way.
 */
export interface RemoteSite {
  /** Writes documents (merged into what the mesh holds) and delivers them. */
  upsert(collection: string, docs: readonly Document[]): Promise<void>
  /** Removes documents (after receiving the device's own) and delivers the removals. */
  remove(collection: string, ids: readonly string[]): Promise<void>
  close(): Promise<void>
}

const CHUNK = 1000

/** A remote site writing into `mesh`; `dir` holds its own store where it needs one. */
export async function remoteSite(backend: MeshBackend, mesh: MeshStore, dir: string): Promise<RemoteSite> {
  if (backend === 'ditto') {
    const store = (mesh as DittoMesh).ditto.store
    return {
      async upsert(collection, docs) {
        for (let i = 0; i < docs.length; i += CHUNK) {
          const part = docs.slice(i, i + CHUNK)
          const args = Object.fromEntries(part.map((d, j) => [`d${j}`, d]))
          await store.execute(
            `INSERT INTO \`${collection}\` DOCUMENTS ${part.map((_, j) => `(:d${j})`).join(', ')} ON ID CONFLICT DO UPDATE`,
            args,
          )
        }
      },
      async remove(collection, ids) {
        await store.execute(`DELETE FROM \`${collection}\` WHERE _id IN :ids`, { ids: [...ids] })
      },
      async close() {},
    }
  }
  const to = mesh as BuiltinMesh
  const site = await openMesh({ dir: join(dir, 'mesh') })
  const link = new MeshLink([site, to])
  return {
    async upsert(collection, docs) {
      for (let i = 0; i < docs.length; i += CHUNK) await site.upsert(collection, docs.slice(i, i + CHUNK))
      await link.pull(site, to)
    },
    async remove(collection, ids) {
      await link.pull(to, site)
      await site.remove(collection, ids)
      await link.pull(site, to)
    },
    close: () => site.close(),
  }
}
