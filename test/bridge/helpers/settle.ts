import { type JsonValue, jsonEqual } from '../../../src/index.js'
import { type CounterRow, counterAdapter } from './counter-model.js'
import { MeshLink } from './mesh-link.js'
import { rows, type TestNode } from './node.js'
import { waitFor } from './wait.js'

/** Syncs two devices both ways until their rows, their meshes and the mirrored documents agree. */
export async function settle(a: TestNode, b: TestNode): Promise<void> {
  await waitFor(
    async () => {
      await a.sync.flush()
      await b.sync.flush()
      await new MeshLink([a.mesh, b.mesh]).sync()
      const docsA = await a.mesh.find({ collection: 'counters', orderBy: '_id' })
      const docsB = await b.mesh.find({ collection: 'counters', orderBy: '_id' })
      const mirrored = (rows(a) as CounterRow[]).map((r) => counterAdapter.toDocument(r))
      return (
        jsonEqual(rows(a) as JsonValue, rows(b) as JsonValue) && jsonEqual(docsA, docsB) && jsonEqual(mirrored, docsA)
      )
    },
    { timeout: 5_000, interval: 10, message: 'convergence' },
  )
}
