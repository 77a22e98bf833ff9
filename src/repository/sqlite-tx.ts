import type Database from 'better-sqlite3'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import type { ModelInfo } from './model-definition.js'
import type { ParkedStore } from './parked-store.js'
import type { DocSyncStateEntry, RepositoryTx } from './repository.js'
import type { ModelStatements } from './sqlite-statements.js'

export interface SqliteTxDeps {
  writer: Database.Database
  statements: ModelStatements
  parked: ParkedStore
  model(name: string): ModelInfo
  /** True while the transaction the object belongs to is open. */
  active(): boolean
}

/** The {@link RepositoryTx} of a SQLite repository: its writer connection, usable only inside a transaction. */
export function sqliteTx({ writer, statements: w, parked, model, active }: SqliteTxDeps): RepositoryTx {
  const guard = () => {
    if (!active()) {
      throw new MeshmirrorError(
        ErrorCode.INVALID_OPTIONS,
        'A repository transaction object was used after its transaction ended. Use it only inside the callback.',
      )
    }
  }
  return {
    get: async (name, id) => {
      guard()
      return w.get(model(name), id)
    },
    upsert: async (name, rows) => {
      guard()
      return w.upsert(model(name), rows)
    },
    delete: async (name, ids) => {
      guard()
      return w.delete(model(name), ids)
    },
    pendingIds: async (name, ids) => {
      guard()
      return w.pendingIds(name, ids)
    },
    putSyncStates: async (name, entries: readonly DocSyncStateEntry[]) => {
      guard()
      w.putSyncStates(name, entries)
    },
    setCheckpoint: async (key, value) => {
      guard()
      w.setCheckpoint(key, value)
    },
    clearSyncState: async () => {
      guard()
      writer.exec('DELETE FROM _meshmirror_sync_state; DELETE FROM _meshmirror_checkpoints')
    },
    acknowledge: async (upTo, models) => {
      guard()
      return w.acknowledge(upTo, models)
    },
    park: async (name, entries) => {
      guard()
      parked.park(model(name).name, entries)
    },
    unpark: async (name, ids) => {
      guard()
      parked.unpark(model(name).name, ids)
    },
    savepoint: async (fn) => {
      guard()
      writer.exec('SAVEPOINT meshmirror_item')
      try {
        const out = await fn()
        writer.exec('RELEASE meshmirror_item')
        return out
      } catch (e) {
        writer.exec('ROLLBACK TO meshmirror_item')
        writer.exec('RELEASE meshmirror_item')
        throw e
      }
    },
  }
}
