// What `meshmirror init` does with each table shape, and each shape mirrored
// between two `meshmirror peer` processes: INTEGER PRIMARY KEY, text keys
// (unicode included), WITHOUT ROWID, composite keys (declared in another
// order than the columns), and tables without a primary key (left out with
// a reason; a config naming one is refused).
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openMesh } from '../../src/index.js'
import { tempDirs } from '../bridge/helpers/wait.js'
import { runCli } from '../cli/helpers.js'
import { type Device, Mesh } from './peers.js'

const SHAPES_DDL = `
CREATE TABLE int_key (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE text_key (code TEXT PRIMARY KEY, label TEXT);
CREATE TABLE no_rowid (code TEXT NOT NULL PRIMARY KEY, qty INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE composite (region TEXT NOT NULL, amount REAL, year INTEGER NOT NULL, PRIMARY KEY (year, region));
CREATE TABLE composite_no_rowid (a INTEGER NOT NULL, b TEXT NOT NULL, note TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE no_pk (at TEXT, what TEXT);
CREATE TABLE unique_not_pk (email TEXT NOT NULL UNIQUE, name TEXT);
`
const MIRRORED = ['composite', 'composite_no_rowid', 'int_key', 'no_rowid', 'text_key']
const UNMIRRORED = ['no_pk', 'unique_not_pk']

const dirs = tempDirs()
let dir: string
let mesh: Mesh
let a: Device
let b: Device

beforeAll(async () => {
  dir = dirs.make('shapes')
  mesh = await Mesh.create(
    dir,
    ['a', 'b'],
    SHAPES_DDL,
    (db, name) => {
      if (name !== 'a') return
      db.exec(`
        INSERT INTO int_key VALUES (1, 'one'), (2, 'two'), (-3, 'negative');
        INSERT INTO text_key VALUES ('plain', 'p'), ('ключ', 'cyrillic'), ('🔑', 'emoji'), ('a/b?c=d&e', 'url-ish');
        INSERT INTO no_rowid VALUES ('Straße', 1), ('STRASSE', 2), ('straße', 3);
        INSERT INTO composite VALUES ('north', 10.5, 2023), ('south', 7.0, 2023), ('north', 11, 2024), ('ÉST', NULL, 2024);
        INSERT INTO composite_no_rowid VALUES (1, 'x', 'first'), (1, 'y', NULL), (2, 'x', 'third'), (2, '["x"]', 'json-looking');
        INSERT INTO no_pk VALUES ('2024-01-01', 'kept local');
        INSERT INTO unique_not_pk VALUES ('a@x', 'kept local');
      `)
    },
    { tables: MIRRORED, keys: 'global' },
  )
  a = mesh.get('a')
  b = mesh.get('b')
}, 60_000)

afterAll(async () => {
  await mesh?.close()
  dirs.cleanup()
})

describe('table shapes', () => {
  it('init includes every table with a declared primary key and leaves out the others with a reason', async () => {
    expect(a.init.config.tables.map((t) => t.table).sort()).toEqual(MIRRORED)
    expect(a.init.skipped.map((s) => s.table).sort()).toEqual(UNMIRRORED)
    for (const s of a.init.skipped) expect(s.reason).toMatch(/primary key/i)
    // The same in words.
    const text = await runCli(['init', '--database', a.dbFile, '--out', join(dir, 'text.config.json')])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/left out no_pk: .*primary key/i)
    expect(text.stdout).toMatch(/left out unique_not_pk: .*primary key/i)
    expect(text.stdout).not.toMatch(/left out composite/)
  })

  it('refuses a config naming a table without a primary key, with INVALID_CONFIG, and writes nothing', async () => {
    const runs = UNMIRRORED.map((table) => {
      const file = join(dir, `bad-${table}.config.json`)
      const config = JSON.parse(readFileSync(b.configFile, 'utf8')) as Record<string, unknown>
      config.mesh = { dir: `./bad-${table}-mesh` }
      config.tables = [{ table: 'int_key', keys: 'global' }, { table }]
      writeFileSync(file, JSON.stringify(config))
      return runCli(['peer', '--json', '--config', file])
    })
    for (const [i, r] of (await Promise.all(runs)).entries()) {
      expect(r.code).toBe(1)
      const error = JSON.parse(r.stdout).error as { code: string; message: string; details: { key?: string } }
      expect(error.code).toBe('INVALID_CONFIG')
      expect(error.details.key).toBe('tables[1].table')
      expect(error.message).toContain(UNMIRRORED[i])
    }
    for (const table of UNMIRRORED) expect(existsSync(join(dir, `bad-${table}-mesh`))).toBe(false)
    expect(
      b.db.prepare("SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_meshmirror%' ESCAPE '\\'").pluck().get(),
    ).toBe(0)
  })

  it('mirrors every shape both ways: inserts, updates of non-key columns, key changes and deletes', async () => {
    await mesh.startAll()
    await mesh.converged('the first rows on b', (d) => d.composite!.length === 4 && d.text_key!.length === 4)
    b.db.prepare("UPDATE composite SET amount = 12.25 WHERE year = 2024 AND region = 'north'").run()
    b.db.prepare("UPDATE composite_no_rowid SET note = 'changed on b' WHERE a = 1 AND b = 'y'").run()
    a.db.prepare("DELETE FROM composite_no_rowid WHERE a = 2 AND b = 'x'").run()
    a.db.prepare("UPDATE composite SET region = 'west' WHERE year = 2023 AND region = 'south'").run()
    a.db.prepare("UPDATE text_key SET label = 'changed' WHERE code = '🔑'").run()
    b.db.prepare("DELETE FROM no_rowid WHERE code = 'STRASSE'").run()
    b.db.prepare("INSERT INTO composite VALUES ('north', 1, 2025)").run()
    const has = (sql: string) => a.db.prepare(sql).pluck().get() !== undefined
    await mesh.converged(
      'the changes of both sides',
      () =>
        has("SELECT 1 FROM composite WHERE year = 2024 AND region = 'north' AND amount = 12.25") &&
        has("SELECT 1 FROM composite_no_rowid WHERE a = 1 AND b = 'y' AND note = 'changed on b'") &&
        has('SELECT 1 FROM composite WHERE year = 2025') &&
        !has("SELECT 1 FROM no_rowid WHERE code = 'STRASSE'") &&
        b.db.prepare("SELECT count(*) FROM composite WHERE region IN ('south', 'west')").pluck().get() === 1 &&
        b.db.prepare("SELECT count(*) FROM composite_no_rowid WHERE a = 2 AND b = 'x'").pluck().get() === 0 &&
        b.db.prepare("SELECT label FROM text_key WHERE code = '🔑'").pluck().get() === 'changed',
    )
    expect(b.db.prepare("SELECT region FROM composite WHERE year = 2023 AND region <> 'north'").pluck().get()).toBe(
      'west',
    )
    for (const t of UNMIRRORED) expect(b.db.prepare(`SELECT count(*) FROM ${t}`).pluck().get()).toBe(0)
  }, 60_000)

  it('names a composite-key document by the JSON of its key values in primary-key order, key columns kept as fields', async () => {
    const rows = a.db.prepare('SELECT year, region, amount FROM composite ORDER BY year, region').all() as {
      year: number
      region: string
      amount: number | null
    }[]
    await mesh.stop(a)
    await using store = await openMesh({ dir: join(dir, 'a-mesh') })
    const docs = await store.find({ collection: 'composite' })
    expect(docs.map((d) => d._id).sort()).toEqual(rows.map((r) => JSON.stringify([r.year, r.region])).sort())
    for (const r of rows) {
      const doc = docs.find((d) => d._id === JSON.stringify([r.year, r.region]))
      expect(doc).toMatchObject({ year: r.year, region: r.region, amount: r.amount })
    }
    const pairs = await store.find({ collection: 'composite_no_rowid' })
    expect(pairs.map((d) => d._id).sort()).toEqual(
      [JSON.stringify([1, 'x']), JSON.stringify([1, 'y']), JSON.stringify([2, '["x"]'])].sort(),
    )
  }, 30_000)
})

describe('an INTEGER PRIMARY KEY past 2^53', () => {
  it('is mirrored exactly: inserts, updates and deletes reach the row with that very key', async () => {
    const big = await Mesh.create(
      dirs.make('big-keys'),
      ['a', 'b'],
      'CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, memo TEXT)',
      (db, name) => {
        if (name !== 'a') return
        db.exec(`INSERT INTO ledger VALUES
          (9007199254740993, 9007199254740995, 'just past 2^53'),
          (9007199254740994, 1, 'its neighbour'),
          (9223372036854775807, -9223372036854775808, 'the largest key'),
          (-9223372036854775808, 0, 'the smallest key')`)
      },
      { keys: 'global' },
    )
    try {
      const [x, y] = big.devices as [Device, Device]
      await big.startAll()
      await big.converged('the big keys on b', (d) => d.ledger!.length === 4)
      y.db.prepare("UPDATE ledger SET memo = 'changed on b' WHERE id = 9007199254740993").run()
      x.db.prepare('DELETE FROM ledger WHERE id = 9007199254740994').run()
      x.db.prepare('INSERT INTO ledger VALUES (?, ?, ?)').run(9007199254740997n, 2n ** 62n, 'added on a')
      const final = await big.converged(
        'changes to big keys on both sides',
        (d) =>
          d.ledger!.length === 4 &&
          x.db.prepare('SELECT memo FROM ledger WHERE id = 9007199254740993').pluck().get() === 'changed on b',
      )
      expect(final.ledger!.map((r) => r[0])).toEqual([
        'integer:-9223372036854775808',
        'integer:9007199254740993',
        'integer:9007199254740997',
        'integer:9223372036854775807',
      ])
      expect(final.ledger!.map((r) => r[1])).toEqual([
        'integer:0',
        'integer:9007199254740995',
        'integer:4611686018427387904',
        'integer:-9223372036854775808',
      ])
    } finally {
      await big.close()
    }
  }, 60_000)
})
