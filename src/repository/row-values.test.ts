import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import type { JsonValue } from '../mesh/document.js'
import { openSqliteRepository } from './sqlite-repository.js'

const dir = mkdtempSync(join(tmpdir(), 'mm-row-values-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const BYTES = Buffer.from([0, 255, 0, 7, 0])

function appDb(name: string): Database.Database {
  const db = new Database(join(dir, name))
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, r REAL, b BLOB, u, note TEXT)')
  return db
}

describe('row values read and written through the repository', () => {
  it('reads every storage class exactly, as plain JSON where JSON is exact and tagged where not', async () => {
    const db = appDb('read.db')
    const insert = db.prepare('INSERT INTO t (id, i, r, b, u) VALUES (?, ?, ?, ?, ?)')
    insert.run(1, 2n, 2.0, BYTES, 2n)
    insert.run(2, 2n ** 53n + 1n, 1.5, Buffer.alloc(0), 2.0)
    insert.run(3, -(2n ** 63n), 1e20, null, 2n ** 63n - 1n)
    insert.run(4, 42n, Number.POSITIVE_INFINITY, 'text in a blob column', 'x')
    db.close()
    await using repo = await openSqliteRepository({ file: join(dir, 'read.db'), models: [{ name: 't' }] })
    const rows = await repo.scan('t', { limit: 10 })
    expect(rows).toEqual([
      { id: 1, i: 2, r: 2, b: { $bytes: BYTES.toString('base64') }, u: 2, note: null },
      { id: 2, i: { $int: '9007199254740993' }, r: 1.5, b: { $bytes: '' }, u: { $real: 2 }, note: null },
      { id: 3, i: { $int: '-9223372036854775808' }, r: 1e20, b: null, u: { $int: '9223372036854775807' }, note: null },
      { id: 4, i: 42, r: { $real: 'Infinity' }, b: 'text in a blob column', u: 'x', note: null },
    ])
  })

  it('writes tagged and plain values back as the same SQLite values, and a class change is a change', async () => {
    const file = join(dir, 'write.db')
    appDb('write.db').close()
    await using repo = await openSqliteRepository({ file, models: [{ name: 't' }] })
    const row = (id: number, u: JsonValue) => ({ id, i: { $int: '9007199254740993' }, b: { $bytes: 'AP8ABwA=' }, u })
    await repo.upsert('t', [row(1, 2), row(2, { $real: 2 }), row(3, 1.5), row(4, { $real: '-Infinity' })])
    const db = new Database(file, { readonly: true })
    const read = () =>
      db
        .prepare('SELECT typeof(i), quote(i), quote(b), typeof(u), quote(u) FROM t ORDER BY id')
        .raw()
        .all() as string[][]
    expect(read()).toEqual([
      ['integer', '9007199254740993', "X'00FF000700'", 'integer', '2'],
      ['integer', '9007199254740993', "X'00FF000700'", 'real', '2.0'],
      ['integer', '9007199254740993', "X'00FF000700'", 'real', '1.5'],
      ['integer', '9007199254740993', "X'00FF000700'", 'real', '-9.0e+999'],
    ])
    // INTEGER 2 and REAL 2.0 compare equal in SQL; the upsert still sees the change.
    expect(await repo.upsert('t', [row(1, { $real: 2 }), row(2, 2)])).toBe(2)
    expect(
      read()
        .slice(0, 2)
        .map((r) => r[3]),
    ).toEqual(['real', 'integer'])
    expect(await repo.upsert('t', [row(1, { $real: 2 }), row(2, 2)])).toBe(0)
    db.close()
  })

  it('captures the old row of an update exactly: unchanged BLOBs and big integers compare equal', async () => {
    const file = join(dir, 'capture.db')
    const db = appDb('capture.db')
    await using repo = await openSqliteRepository({ file, models: [{ name: 't' }] })
    await repo.setChangeCapture('t', true)
    db.prepare('INSERT INTO t (id, i, r, b, u) VALUES (?, ?, ?, ?, ?)').run(1, 2n ** 63n - 1n, 2.0, BYTES, 2n)
    db.prepare('INSERT INTO t (id, i, r, b, u) VALUES (?, ?, ?, ?, ?)').run(2, 5n, 1.5, BYTES, 2.0)
    const before = await repo.scan('t', { limit: 10 })
    db.exec("UPDATE t SET note = 'changed'")
    const updates = (await repo.pendingChanges({ models: ['t'], limit: 100 })).filter((c) => c.old !== null)
    expect(updates.map((c) => c.old)).toEqual(before)
    db.close()
  })
})
