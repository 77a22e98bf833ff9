import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import type { RemoteWrite, Row } from './repository.js'
import { openSqliteRepository } from './sqlite-repository.js'

const dir = mkdtempSync(join(tmpdir(), 'mm-parking-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const DDL = `
CREATE TABLE label (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE artist (id INTEGER PRIMARY KEY, name TEXT NOT NULL, label_id INTEGER REFERENCES label (id));
CREATE TABLE album (id TEXT PRIMARY KEY, artist_id INTEGER NOT NULL REFERENCES artist (id), title TEXT);
CREATE TABLE track (
  album_id TEXT NOT NULL REFERENCES album (id) ON DELETE CASCADE,
  no INTEGER NOT NULL,
  name TEXT,
  PRIMARY KEY (album_id, no)
) WITHOUT ROWID;
CREATE TABLE employee (id INTEGER PRIMARY KEY, reports_to INTEGER REFERENCES employee (id));
`
const MODELS = ['track', 'album', 'artist', 'label', 'employee']

/** A small catalogue whose rows reference each other, as the documents another device sends. */
function catalogue(): { model: string; row: Row }[] {
  const out: { model: string; row: Row }[] = []
  for (let l = 1; l <= 2; l++) out.push({ model: 'label', row: { id: l, name: `label ${l}` } })
  for (let a = 1; a <= 4; a++) {
    out.push({ model: 'artist', row: { id: a, name: `artist ${a}`, label_id: a === 4 ? null : (a % 2) + 1 } })
  }
  for (let b = 1; b <= 5; b++) {
    out.push({ model: 'album', row: { id: `al${b}`, artist_id: (b % 4) + 1, title: `album ${b}` } })
    for (let t = 1; t <= 3; t++) out.push({ model: 'track', row: { album_id: `al${b}`, no: t, name: `t${b}.${t}` } })
  }
  // A chain and a branch of managers.
  for (let e = 1; e <= 6; e++)
    out.push({ model: 'employee', row: { id: e, reports_to: e === 1 ? null : Math.ceil(e / 2) } })
  return out
}

function idOf(model: string, row: Row): string {
  return model === 'track' ? JSON.stringify([row.album_id, row.no]) : String(row.id)
}

describe('parking', () => {
  it('applies every row whichever order and grouping the documents arrive in', async () => {
    const rows = catalogue()
    let run = 0
    await fc.assert(
      fc.asyncProperty(
        fc.shuffledSubarray(
          rows.map((_, i) => i),
          { minLength: rows.length, maxLength: rows.length },
        ),
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: rows.length, maxLength: rows.length }),
        async (order, sizes) => {
          const file = join(dir, `p${run++}.db`)
          const app = new Database(file)
          app.exec(DDL)
          app.close()
          const repo = await openSqliteRepository({ file, models: MODELS.map((name) => ({ name })) })
          try {
            const byKey = new Map(rows.map((r) => [`${r.model}\u0000${idOf(r.model, r.row)}`, r]))
            // Deliveries of the shuffled documents in batches of random sizes; unblocked ones go in the next batch.
            let pending = order.map((i) => rows[i]!)
            let k = 0
            let retried: { model: string; row: Row }[] = []
            while (pending.length > 0 || retried.length > 0) {
              const size = sizes[k++ % sizes.length]!
              const batch = [...retried, ...pending.slice(0, size)]
              pending = pending.slice(size)
              retried = []
              const groups = new Map<string, RemoteWrite[]>()
              for (const { model, row } of batch) {
                const writes = groups.get(model) ?? []
                writes.push({ id: idOf(model, row), row, hash: 'h', doc: null })
                groups.set(model, writes)
              }
              const result = await repo.applyRemoteBatch!({
                groups: [...groups].map(([model, writes]) => ({ model, writes, hold: [] })),
                checkpoints: [],
              })
              for (const [model, ids] of result.unblocked) {
                for (const id of ids) retried.push(byKey.get(`${model}\u0000${id}`)!)
              }
            }
            expect(await repo.parkedCounts()).toEqual({ parked: 0, refused: 0 })
            for (const model of MODELS) {
              expect(await repo.count(model)).toBe(rows.filter((r) => r.model === model).length)
            }
          } finally {
            await repo.close()
          }
        },
      ),
      { numRuns: 40 },
    )
  })
})
