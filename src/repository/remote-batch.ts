import type Database from 'better-sqlite3'
import { isBusy } from './busy-retry.js'
import type { ModelInfo } from './model-definition.js'
import type { RemoteBatch, RemoteBatchResult, Row, WriteOutcome } from './repository.js'
import type { ModelStatements } from './sqlite-statements.js'

/**
 * Runs a batch in one transaction on `db` (one attempt: SQLITE_BUSY is
 * thrown for the caller to retry). Rows with captured local changes not yet
 * sent are held back. With `isolate`, each write runs in a savepoint and a
 * failing one is refused instead of failing the batch.
 */
export function executeRemoteBatch(
  db: Database.Database,
  st: ModelStatements,
  models: ReadonlyMap<string, ModelInfo>,
  batch: RemoteBatch,
  isolate: boolean,
): RemoteBatchResult {
  const result: RemoteBatchResult = { groups: [], errors: [] }
  const exact = batch.exact === true || isolate
  db.exec('BEGIN IMMEDIATE')
  try {
    st.setFlag()
    batch.groups.forEach((group, g) => {
      const model = models.get(group.model)
      if (!model) throw new Error(`Unknown model ${group.model}.`)
      const held = st.pendingIds(
        group.model,
        group.writes.map((w) => w.id),
      )
      for (const id of group.hold) held.add(id)
      const outcomes: WriteOutcome[] = new Array(group.writes.length)
      const states: { id: string; hash: string; origin: 'remote'; doc: string | null }[] = []
      const upserts: Row[] = []
      const deletes: string[] = []
      let changed = 0
      group.writes.forEach((w, i) => {
        if (held.has(w.id)) {
          outcomes[i] = 2
          return
        }
        outcomes[i] = 0
        if (!exact) {
          if (w.row === null) deletes.push(w.id)
          else upserts.push(w.row)
        } else {
          if (isolate) db.exec('SAVEPOINT meshmirror_item')
          try {
            const n = w.row === null ? st.delete(model, [w.id]) : st.upsert(model, [w.row])
            if (isolate) db.exec('RELEASE meshmirror_item')
            if (n > 0) outcomes[i] = 1
            changed += n
          } catch (error) {
            if (!isolate || isBusy(error)) throw error
            db.exec('ROLLBACK TO meshmirror_item')
            db.exec('RELEASE meshmirror_item')
            outcomes[i] = 3
            const code = (error as { code?: unknown }).code
            result.errors.push({
              group: g,
              write: i,
              message: (error as Error).message,
              ...(typeof code === 'string' ? { code } : {}),
            })
            return
          }
        }
        states.push({ id: w.id, hash: w.hash, origin: 'remote', doc: w.doc })
      })
      if (upserts.length > 0) changed += st.upsert(model, upserts)
      if (deletes.length > 0) changed += st.delete(model, deletes)
      if (states.length > 0) st.putSyncStates(group.model, states)
      result.groups.push({ changed, outcomes })
    })
    for (const c of batch.checkpoints) st.setCheckpoint(c.key, c.value)
    st.clearFlag()
    db.exec('COMMIT')
    return result
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK')
    throw error
  }
}
