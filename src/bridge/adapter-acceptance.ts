import { describe, expect, it } from 'vitest'
import type { Document } from '../mesh/document.js'
import { compileScope } from '../mesh/filter.js'
import { canonicalJson } from '../mesh/json.js'
import { matches } from '../mesh/match.js'
import { normaliseDocument } from '../mesh/validate.js'
import type { Repository, Row } from '../repository/repository.js'
import type { SyncAdapter, SyncContext } from './adapter.js'

export interface AdapterAcceptanceOptions<R extends Row> {
  adapter: SyncAdapter<R>
  /** Records of the model as the repository returns them (at least one), in scope for `context`. */
  records: R[]
  /** The context the scope is evaluated in. Default `{}`. */
  context?: SyncContext
  /** Documents that must be refused: `fromDocument` throws or returns null for each. */
  malformed?: Document[]
  /** Documents outside the scope for `context`: never applied. */
  outOfScope?: Document[]
  /** Documents in tolerated older forms (aliases) and the records they must map to. */
  aliases?: { doc: Document; record: R }[]
  /** A repository holding the model, to check that records survive storage. The suite closes it. */
  repository?: () => Promise<Repository>
}

/**
 * The acceptance suite every sync adapter (hand-written or generated)
 * passes: ids, valid documents, round trips that are stable (so change
 * detection never sees a difference that is not there), refusals, scope, and
 * records surviving the repository. Call it inside a vitest test file.
 *
 * @example
 * ```ts
 * import { runAdapterAcceptance } from 'meshmirror/testing'
 * runAdapterAcceptance('counters', () => ({
 *   adapter: countersAdapter,
 *   records: [sampleCounter],
 *   context: { branchId: 1 },
 *   malformed: [{ _id: 'x', branchId: 'one' }],
 *   outOfScope: [{ ...countersAdapter.toDocument(sampleCounter), branchId: 2 }],
 * }))
 * ```
 */
export function runAdapterAcceptance<R extends Row>(
  name: string,
  options: () => AdapterAcceptanceOptions<R> | Promise<AdapterAcceptanceOptions<R>>,
): void {
  describe(`sync adapter acceptance: ${name}`, () => {
    const load = async () => {
      const o = await options()
      expect(o.records.length, 'give at least one record').toBeGreaterThan(0)
      return { ...o, context: o.context ?? {} }
    }

    it('gives each record a document whose _id is its documentId', async () => {
      const { adapter, records } = await load()
      for (const r of records) {
        const id = adapter.documentId(r)
        expect(typeof id).toBe('string')
        expect(adapter.toDocument(r)._id).toBe(id)
      }
    })

    it('maps records to valid mesh documents (plain JSON, valid field names)', async () => {
      const { adapter, records } = await load()
      for (const r of records) {
        const doc = adapter.toDocument(r)
        expect(() => normaliseDocument(doc)).not.toThrow()
        expect(JSON.parse(JSON.stringify(doc))).toEqual(doc)
      }
    })

    it('round-trips records through documents, stably', async () => {
      const { adapter, records } = await load()
      for (const r of records) {
        const doc = adapter.toDocument(r)
        const back = adapter.fromDocument(doc)
        expect(back).toEqual(r)
        // The same content again gives the same document: no phantom changes, no echo loops.
        expect(canonicalJson(adapter.toDocument(back as R))).toBe(canonicalJson(doc))
      }
    })

    it('refuses malformed documents', async () => {
      const { adapter, malformed = [] } = await load()
      for (const doc of malformed) {
        let out: R | null = null
        let threw = false
        try {
          out = adapter.fromDocument(doc)
        } catch {
          threw = true
        }
        expect(threw || out === null, `document ${JSON.stringify(doc)} was accepted`).toBe(true)
      }
    })

    it('reads tolerated older forms (aliases)', async () => {
      const { adapter, aliases = [] } = await load()
      for (const { doc, record } of aliases) expect(adapter.fromDocument(doc)).toEqual(record)
    })

    it('builds a valid scope from the context, holding its records and excluding others', async () => {
      const { adapter, records, context, outOfScope = [] } = await load()
      const filter = adapter.observerQuery?.(context) ?? null
      if (filter === null) {
        expect(outOfScope, 'a model that only sends has no scope to exclude documents from').toEqual([])
        return
      }
      const scope = compileScope({ collection: adapter.collection, filter })
      const accepts = (doc: Document) =>
        adapter.shouldApplyRemote ? adapter.shouldApplyRemote(doc, context) : matches(scope.filter, doc)
      for (const r of records) {
        const doc = adapter.toDocument(r)
        expect(matches(scope.filter, doc), `record ${doc._id} is outside the scope`).toBe(true)
        expect(accepts(doc)).toBe(true)
      }
      for (const doc of outOfScope) {
        expect(accepts(doc), `document ${doc._id} is outside the scope but would be applied`).toBe(false)
      }
    })

    it('stores records in the repository and reads back the same documents', async (ctx) => {
      const { adapter, records, repository } = await load()
      if (!repository) {
        ctx.skip()
        return
      }
      const repo = await repository()
      try {
        await repo.transaction(
          async (tx) => {
            if (adapter.upsertToRepository) await adapter.upsertToRepository(tx, records)
            else await tx.upsert(adapter.model, records)
          },
          { origin: 'remote' },
        )
        for (const r of records) {
          const stored = await repo.get(adapter.model, adapter.documentId(r))
          expect(stored, `record ${adapter.documentId(r)} was not stored`).toBeDefined()
          expect(canonicalJson(adapter.toDocument(stored as R))).toBe(canonicalJson(adapter.toDocument(r)))
        }
        const ids = records.map((r) => adapter.documentId(r))
        await repo.transaction(
          async (tx) => {
            if (adapter.deleteFromRepository) await adapter.deleteFromRepository(tx, ids)
            else await tx.delete(adapter.model, ids)
          },
          { origin: 'remote' },
        )
        expect((await repo.getMany(adapter.model, ids)).size).toBe(0)
      } finally {
        await repo.close()
      }
    })
  })
}
