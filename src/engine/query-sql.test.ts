import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Document, JsonValue } from '../mesh/document.js'
import { compileQuery } from '../mesh/filter.js'
import { applyQueryInMemory } from '../mesh/match.js'
import type { Filter, OrderBy, Query } from '../mesh/query.js'
import { openBuiltinStore } from './open-builtin-store.js'
import { filterToSql } from './query-sql.js'
import type { BuiltinMesh } from './types.js'

// Values chosen to collide across types: 1 vs true vs "1", null vs missing,
// strings around the surrogate range, arrays and objects.
const scalars: JsonValue[] = [
  null,
  true,
  false,
  0,
  1,
  -1,
  2.5,
  1e9,
  '',
  '1',
  'a',
  'b',
  'B',
  'é',
  '\uFFFD',
  '\u{1F600}',
  'ab',
]
const arbScalar = fc.constantFrom(...scalars)
const arbValue: fc.Arbitrary<JsonValue> = fc.oneof(
  { weight: 6, arbitrary: arbScalar },
  { weight: 1, arbitrary: fc.array(arbScalar, { maxLength: 2 }) },
  { weight: 1, arbitrary: fc.record({ x: arbScalar }, { requiredKeys: [] }) },
)
const FIELDS = ['a', 'b', 'n.x']
const arbField = fc.constantFrom(...FIELDS, '_id')

const arbLeaf: fc.Arbitrary<Filter> = fc.oneof(
  fc.tuple(arbField, arbValue).map(([f, v]) => ({ [f]: v })),
  fc.tuple(arbField, fc.constantFrom('$eq', '$ne'), arbValue).map(([f, op, v]) => ({ [f]: { [op]: v } })),
  fc
    .tuple(arbField, fc.constantFrom('$gt', '$gte', '$lt', '$lte'), arbScalar)
    .map(([f, op, v]) => ({ [f]: { [op]: v } })),
  fc
    .tuple(arbField, fc.constantFrom('$in', '$nin'), fc.array(arbValue, { maxLength: 4 }))
    .map(([f, op, v]) => ({ [f]: { [op]: v } })),
  fc.tuple(arbField, fc.boolean()).map(([f, v]) => ({ [f]: { $exists: v } })),
  fc.tuple(arbField, arbScalar).map(([f, v]) => ({ [f]: { $not: { $gte: v } } })),
)
const arbFilter: fc.Arbitrary<Filter> = fc.letrec<{ f: Filter }>((tie) => ({
  f: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    arbLeaf,
    fc.array(tie('f'), { maxLength: 3 }).map((items) => ({ $and: items })),
    fc.array(tie('f'), { maxLength: 3 }).map((items) => ({ $or: items })),
    tie('f').map((f) => ({ $not: f })),
  ),
})).f
const arbOrder: fc.Arbitrary<OrderBy[]> = fc.array(
  fc.record({ field: fc.constantFrom(...FIELDS), direction: fc.constantFrom('asc' as const, 'desc' as const) }),
  { maxLength: 2 },
)

describe('SQL translation of queries', () => {
  let dir: string
  let mesh: BuiltinMesh
  let all: Document[]

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mm-query-sql-'))
    mesh = await openBuiltinStore({ dir })
    const docs = fc.sample(
      fc.record(
        { a: arbValue, b: arbValue, n: fc.oneof(arbValue, fc.record({ x: arbValue }, { requiredKeys: [] })) },
        { requiredKeys: [] },
      ),
      { numRuns: 400, seed: 42 },
    )
    await mesh.upsert(
      't',
      docs.map((d, i) => ({ _id: `d${String(i).padStart(3, '0')}`, ...d })),
    )
    all = await mesh.find({ collection: 't' })
    expect(all).toHaveLength(400)
  })

  afterAll(async () => {
    await mesh.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('selects exactly what the reference matcher selects, in the same order', async () => {
    await fc.assert(
      fc.asyncProperty(
        arbFilter,
        arbOrder,
        fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
        async (filter, orderBy, limit) => {
          // Without orderBy, ties of (nothing) sort by _id on both sides.
          const query: Query = {
            collection: 't',
            filter,
            orderBy,
            ...(limit === undefined ? {} : { limit, offset: 3 }),
          }
          const expected = applyQueryInMemory(compileQuery(query), all).map((d) => d._id)
          const got = (await mesh.find(query)).map((d) => d._id)
          // Arrays and objects have no specified order among themselves.
          if (!sortsOnCompositeTies(query, all)) expect(got).toEqual(expected)
          else expect([...got].sort()).toEqual([...expected].sort())
          expect(await mesh.count({ collection: 't', filter })).toBe(
            applyQueryInMemory(compileQuery({ collection: 't', filter }), all).length,
          )
        },
      ),
      { numRuns: 400 },
    )
  })

  it('answers scalar filters in SQL alone and uses an index for them', async () => {
    await mesh.createIndex('t', 'a')
    await mesh.find({ collection: 't', filter: { a: 'b' } })
    const where = filterToSql(compileQuery({ collection: 't', filter: { a: 'b' } }).filter)
    expect(where.exact).toBe(true)
    // Between transactions reads run on the writer connection; during one, on the reader (once a read
    // there has loaded the new schema). Both plan the index.
    const { core } = mesh as unknown as { core: Record<'writer' | 'reader', import('better-sqlite3').Database> }
    core.reader.prepare('SELECT 1 FROM docs LIMIT 1').get()
    for (const db of [core.writer, core.reader]) {
      const plan = db
        .prepare(`EXPLAIN QUERY PLAN SELECT doc FROM docs WHERE collection = ? AND doc IS NOT NULL AND (${where.sql})`)
        .all('t', ...where.params) as { detail: string }[]
      expect(plan.map((p) => p.detail).join('\n')).toMatch(/USING INDEX ix_t_/)
    }
    const inPlan = filterToSql(compileQuery({ collection: 't', filter: { a: { $in: ['a', 'b'] } } }).filter)
    expect(inPlan.exact).toBe(true)
  })

  it('does not let filter values reach SQL as code', async () => {
    const hostile = "x') OR 1=1 --"
    expect(await mesh.find({ collection: 't', filter: { a: hostile } })).toEqual([])
    expect(await mesh.count({ collection: 't', filter: { a: { $in: [hostile, "'"] } } })).toBe(0)
  })
})

/** True when two results could tie on a sort key holding arrays/objects. */
function sortsOnCompositeTies(query: Query, docs: Document[]): boolean {
  const keys = (query.orderBy as OrderBy[]) ?? []
  return keys.some((k) => {
    const path = (typeof k === 'string' ? k : k.field).split('.')
    return docs.some((d) => {
      let v: unknown = d
      for (const p of path)
        v = v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>)[p] : undefined
      return typeof v === 'object' && v !== null
    })
  })
}
