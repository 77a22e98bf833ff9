// A music store shaped like Chinook, mirrored between two `meshmirror peer`
// processes on configs written by `meshmirror init`: a full seed into an
// empty copy, edits on both sides, children before their parents (parked,
// then applied, across a restart too), cascade deletes, composite keys.
// One pair of peers serves the whole file; each test ends on a full
// comparison of every table, storage classes included.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDirs } from '../bridge/helpers/wait.js'
import { runCli } from '../cli/helpers.js'
import { type Dump, diffDumps, dumpDatabase } from './dump.js'
import { type Device, Mesh } from './peers.js'
import { CHINOOK_DDL, CHINOOK_TABLES, chinookCounts, seedChinook } from './schemas.js'

const dirs = tempDirs()
let mesh: Mesh
let a: Device
let b: Device
let seeded: Dump
let dir: string

const one = (db: Database.Database, sql: string, ...args: unknown[]) =>
  db
    .prepare(sql)
    .pluck()
    .get(...args)
const has = (db: Database.Database, sql: string, ...args: unknown[]) => one(db, sql, ...args) !== undefined

beforeAll(async () => {
  dir = dirs.make('chinook')
  // A store seeded at one place, ids assigned there: reviewed to keys "global".
  mesh = await Mesh.create(
    dir,
    ['a', 'b'],
    CHINOOK_DDL,
    (db, name) => {
      if (name === 'a') seedChinook(db, 7)
    },
    { keys: 'global' },
  )
  a = mesh.get('a')
  b = mesh.get('b')
  seeded = dumpDatabase(a.db)
  await mesh.startAll()
}, 60_000)

afterAll(async () => {
  await mesh?.close()
  dirs.cleanup()
})

describe('a Chinook-shaped music store between two peers', () => {
  it('init proposes every table, the composite-key one included', () => {
    expect(a.init.config.tables.map((t) => t.table).sort()).toEqual([...CHINOOK_TABLES].sort())
    expect(a.init.skipped).toEqual([])
    // Every INTEGER-keyed table gets an explicit choice with why; seeded rows are pointed out.
    const integerKeyed = a.init.config.tables.filter((t) => t.table !== 'PlaylistTrack').map((t) => t.table)
    expect(a.init.keys.map((k) => k.table).sort()).toEqual(integerKeyed.sort())
    for (const k of a.init.keys) {
      expect(k.keys).toBe('local')
      expect(k.reason).toMatch(/existing rows? become this device's rows/)
    }
  })

  it('seeds the whole store into an empty copy of the schema, exactly', async () => {
    const n = chinookCounts()
    expect(seeded.Track).toHaveLength(n.tracks)
    const final = await mesh.converged('the seed on b', (d) => d.PlaylistTrack!.length === seeded.PlaylistTrack!.length)
    // Nothing was changed on the way: both sides hold the seed as written.
    expect(diffDumps(seeded, final, ['seed', 'mirrored'])).toEqual([])
    await mesh.statusCount(b, 'parked', (n) => n === 0)
    await mesh.statusCount(b, 'refused', (n) => n === 0)
  }, 60_000)

  it('mirrors edits made on both sides, parents and children in one transaction and in separate ones', async () => {
    const freeTrack = one(b.db, 'SELECT max(TrackId) FROM Track') as number
    // a: a new artist and album in one transaction; updates.
    a.db.transaction(() => {
      a.db.prepare("INSERT INTO Artist VALUES (10001, 'Os Mutantes')").run()
      a.db.prepare("INSERT INTO Album VALUES (10001, 'A Divina Comédia', 10001)").run()
      a.db.prepare("INSERT INTO Track VALUES (10001, 'Ave Lúcifer', 10001, 1, 1, NULL, 200000, NULL, 0.99)").run()
    })()
    a.db.prepare("UPDATE Track SET Name = Name || ' (remastered)', UnitPrice = 1.29 WHERE TrackId <= 10").run()
    a.db.prepare("UPDATE Customer SET Email = 'new-' || Email WHERE CustomerId = 3").run()
    // a: an employee, then (a separate transaction) a customer they support.
    a.db
      .prepare(
        "INSERT INTO Employee VALUES (10001, 'Peacock', 'Jane', 'Sales', 1, NULL, '2024-01-02 00:00:00', 'Calgary', 'Canada', NULL)",
      )
      .run()
    a.db
      .prepare(
        "INSERT INTO Customer VALUES (10001, 'Ana', 'Silva', NULL, 'Lisboa', 'Portugal', NULL, 'ana@x.pt', 10001)",
      )
      .run()
    // b: a genre and its tracks in one transaction; a playlist, then its tracks in another.
    b.db.transaction(() => {
      b.db.prepare("INSERT INTO Genre VALUES (20001, 'Tropicália')").run()
      b.db.prepare("INSERT INTO Track VALUES (20001, 'Baby', NULL, 1, 20001, 'Caetano', 210000, 4000000, 1.99)").run()
      b.db
        .prepare("INSERT INTO Track VALUES (20002, 'Panis et Circenses', NULL, 2, 20001, NULL, 220000, NULL, 2)")
        .run()
    })()
    b.db.prepare("INSERT INTO Playlist VALUES (20001, 'Brasil ☀')").run()
    b.db.prepare('INSERT INTO PlaylistTrack VALUES (20001, 20001), (20001, 20002), (20001, 1)').run()
    // b: an invoice, then its lines in a second transaction; a deleted track no one references.
    b.db.prepare("INSERT INTO Invoice VALUES (20001, 1, '2025-03-01 10:00:00', 'Porto', 'Portugal', 3.98)").run()
    b.db.prepare('INSERT INTO InvoiceLine VALUES (20001, 20001, 20001, 1.99, 1), (20002, 20001, 20002, 1.99, 1)').run()
    b.db.prepare('UPDATE Invoice SET Total = 4 WHERE InvoiceId = 20001').run()
    b.db.prepare('DELETE FROM Track WHERE TrackId = ?').run(freeTrack)

    await mesh.converged(
      'the edits of a and b on both sides',
      () =>
        has(b.db, 'SELECT 1 FROM Customer WHERE CustomerId = 10001 AND SupportRepId = 10001') &&
        has(b.db, 'SELECT 1 FROM Track WHERE TrackId = 10001 AND AlbumId = 10001') &&
        has(b.db, "SELECT 1 FROM Track WHERE TrackId = 10 AND UnitPrice = 1.29 AND Name LIKE '%(remastered)'") &&
        has(a.db, 'SELECT 1 FROM InvoiceLine WHERE InvoiceLineId = 20002') &&
        has(a.db, 'SELECT 1 FROM PlaylistTrack WHERE PlaylistId = 20001 AND TrackId = 1') &&
        has(a.db, 'SELECT 1 FROM Invoice WHERE InvoiceId = 20001 AND Total = 4') &&
        !has(a.db, 'SELECT 1 FROM Track WHERE TrackId = ?', freeTrack),
    )
    // NUMERIC affinity keeps 4 and 2 as INTEGER, 1.29 as REAL, on both sides.
    expect(one(a.db, 'SELECT typeof(Total) FROM Invoice WHERE InvoiceId = 20001')).toBe('integer')
    expect(one(a.db, 'SELECT typeof(UnitPrice) FROM Track WHERE TrackId = 20002')).toBe('integer')
    expect(one(b.db, 'SELECT typeof(UnitPrice) FROM Track WHERE TrackId = 10')).toBe('real')
  }, 60_000)

  it('parks children whose parents have not arrived, and applies them when the parents land', async () => {
    // The app on a writes children first, with enforcement off on its own connection.
    const loose = new Database(a.dbFile)
    loose.pragma('busy_timeout = 10000')
    loose.pragma('foreign_keys = OFF')
    try {
      loose.transaction(() => {
        loose.prepare("INSERT INTO Album VALUES (30001, 'Clube da Esquina', 30001)").run()
        for (let t = 30001; t <= 30005; t++) {
          loose.prepare('INSERT INTO Track VALUES (?, ?, 30001, 1, 1, NULL, 180000, NULL, 0.99)').run(t, `Faixa ${t}`)
        }
        loose.prepare('INSERT INTO PlaylistTrack VALUES (30001, 30001), (30001, 30002), (30001, 1)').run()
        loose.prepare('INSERT INTO InvoiceLine VALUES (30001, 30001, 1, 0.99, 1), (30002, 30001, 30003, 0.99, 2)').run()
      })()
    } finally {
      loose.close()
    }
    // 1 album, 5 tracks, 3 playlist entries, 2 invoice lines.
    await mesh.statusCount(b, 'parked', (n) => n >= 11)
    const report = await mesh.parkedUntil(b, (r) => r.parked === 11)
    expect(report.refused).toBe(0)
    expect(report.entries.every((e) => e.state === 'parked' && e.reason.length > 0)).toBe(true)
    expect(report.entries.every((e) => Number.isFinite(Date.parse(e.since)) && typeof e.attempts === 'number')).toBe(
      true,
    )
    const ids = (collection: string) =>
      report.entries
        .filter((e) => e.collection === collection)
        .map((e) => e.id)
        .sort()
    expect(ids('Album')).toEqual(['30001'])
    expect(ids('Track')).toEqual(['30001', '30002', '30003', '30004', '30005'])
    expect(ids('InvoiceLine')).toEqual(['30001', '30002'])
    // Composite keys: JSON of the key values in primary-key order.
    expect(ids('PlaylistTrack')).toEqual(
      [JSON.stringify([30001, 1]), JSON.stringify([30001, 30001]), JSON.stringify([30001, 30002])].sort(),
    )
    // The status snapshot, read from outside, counts them too.
    const status = await runCli(['status', '--dir', join(dir, 'b-mesh'), '--json'])
    expect(JSON.parse(status.stdout).snapshot.sync).toMatchObject({ parked: 11, refused: 0 })
    expect(has(b.db, 'SELECT 1 FROM Album WHERE AlbumId = 30001')).toBe(false)
    expect(has(b.db, 'SELECT 1 FROM Track WHERE TrackId = 30001')).toBe(false)

    // The parents, one transaction each, the grandparent last.
    a.db.prepare("INSERT INTO Invoice VALUES (30001, 2, '2025-04-01 09:30:00', 'Belo Horizonte', 'Brazil', 2.97)").run()
    a.db.prepare("INSERT INTO Playlist VALUES (30001, 'Minas')").run()
    a.db.prepare("INSERT INTO Artist VALUES (30001, 'Milton Nascimento')").run()
    await mesh.converged('the parked rows applied on b', () =>
      has(b.db, 'SELECT 1 FROM PlaylistTrack WHERE PlaylistId = 30001 AND TrackId = 30002'),
    )
    expect(one(b.db, 'SELECT count(*) FROM Track WHERE AlbumId = 30001')).toBe(5)
    expect(one(b.db, 'SELECT count(*) FROM InvoiceLine WHERE InvoiceId = 30001')).toBe(2)
    await mesh.statusCount(b, 'parked', (n) => n === 0)
  }, 90_000)

  it('keeps parked rows across a restart of the receiving peer and applies them once the parents come', async () => {
    const loose = new Database(a.dbFile)
    loose.pragma('busy_timeout = 10000')
    loose.pragma('foreign_keys = OFF')
    try {
      loose.prepare("INSERT INTO Album VALUES (40001, 'Tábua de Esmeralda', 40001)").run()
      loose.prepare("INSERT INTO Track VALUES (40001, 'Zumbi', 40001, 1, 1, 'Jorge Ben', 200000, NULL, 0.99)").run()
      loose.prepare('INSERT INTO InvoiceLine VALUES (40001, 40001, 40001, 0.99, 1)').run()
    } finally {
      loose.close()
    }
    await mesh.statusCount(b, 'parked', (n) => n >= 3)
    await mesh.stop(b)
    // Stopped, b still lists them: they are kept in its database.
    const offline = await b.parked()
    expect(offline.parked).toBe(3)
    expect(offline.entries.map((e) => `${e.collection}/${e.id}`).sort()).toEqual([
      'Album/40001',
      'InvoiceLine/40001',
      'Track/40001',
    ])
    await mesh.start(b)
    await mesh.statusCount(b, 'parked', (n) => n === 3)

    a.db.prepare("INSERT INTO Artist VALUES (40001, 'Jorge Ben Jor')").run()
    a.db.prepare("INSERT INTO Invoice VALUES (40001, 3, '2025-05-01 12:00:00', NULL, NULL, 0.99)").run()
    await mesh.converged('the rows parked before the restart applied on b', () =>
      has(b.db, 'SELECT 1 FROM InvoiceLine WHERE InvoiceLineId = 40001'),
    )
    await mesh.statusCount(b, 'parked', (n) => n === 0)
  }, 90_000)

  it('deletes cascading children on every device, without errors and without rows coming back', async () => {
    const invoice = one(
      a.db,
      'SELECT InvoiceId FROM Invoice WHERE InvoiceId < 100 ORDER BY InvoiceId LIMIT 1',
    ) as number
    const lines = one(a.db, 'SELECT count(*) FROM InvoiceLine WHERE InvoiceId = ?', invoice) as number
    const playlist = 1
    const entries = one(b.db, 'SELECT count(*) FROM PlaylistTrack WHERE PlaylistId = ?', playlist) as number
    expect(lines).toBeGreaterThan(0)
    expect(entries).toBeGreaterThan(0)
    const before = [a.errors().length, b.errors().length]
    // Each side deletes a parent; SQLite cascades to its children locally.
    b.db.prepare('DELETE FROM Invoice WHERE InvoiceId = ?').run(invoice)
    a.db.prepare('DELETE FROM Playlist WHERE PlaylistId = ?').run(playlist)
    expect(one(b.db, 'SELECT count(*) FROM InvoiceLine WHERE InvoiceId = ?', invoice)).toBe(0)
    await mesh.converged(
      'the cascades on both sides',
      () =>
        !has(a.db, 'SELECT 1 FROM InvoiceLine WHERE InvoiceId = ?', invoice) &&
        !has(b.db, 'SELECT 1 FROM PlaylistTrack WHERE PlaylistId = ?', playlist),
    )
    // A later change crosses both ways; the deleted rows have not come back meanwhile.
    a.db.prepare("UPDATE Artist SET Name = 'after the cascade (a)' WHERE ArtistId = 1").run()
    b.db.prepare("UPDATE Artist SET Name = 'after the cascade (b)' WHERE ArtistId = 2").run()
    await mesh.converged(
      'a later change on both sides',
      () =>
        one(b.db, 'SELECT Name FROM Artist WHERE ArtistId = 1') === 'after the cascade (a)' &&
        one(a.db, 'SELECT Name FROM Artist WHERE ArtistId = 2') === 'after the cascade (b)',
    )
    for (const d of [a, b]) {
      expect(has(d.db, 'SELECT 1 FROM Invoice WHERE InvoiceId = ?', invoice)).toBe(false)
      expect(has(d.db, 'SELECT 1 FROM InvoiceLine WHERE InvoiceId = ?', invoice)).toBe(false)
      expect(has(d.db, 'SELECT 1 FROM Playlist WHERE PlaylistId = ?', playlist)).toBe(false)
      expect(has(d.db, 'SELECT 1 FROM PlaylistTrack WHERE PlaylistId = ?', playlist)).toBe(false)
    }
    expect([a.errors().slice(before[0]), b.errors().slice(before[1])]).toEqual([[], []])
    expect(a.status()?.sync.errors).toBe(0)
    expect(b.status()?.sync.errors).toBe(0)
  }, 60_000)

  it('mirrors updates and deletes of composite-key rows', async () => {
    const [p, t1] = a.db.prepare('SELECT PlaylistId, TrackId FROM PlaylistTrack ORDER BY 1, 2 LIMIT 1').raw().get() as [
      number,
      number,
    ]
    const t2 = one(
      a.db,
      'SELECT TrackId FROM Track WHERE TrackId NOT IN (SELECT TrackId FROM PlaylistTrack WHERE PlaylistId = ?) ORDER BY TrackId LIMIT 1',
      p,
    ) as number
    const [p3, t3] = b.db
      .prepare('SELECT PlaylistId, TrackId FROM PlaylistTrack ORDER BY 1 DESC, 2 DESC LIMIT 1')
      .raw()
      .get() as [number, number]
    // a moves an entry to another track (a key update), b deletes one and adds one.
    a.db.prepare('UPDATE PlaylistTrack SET TrackId = ? WHERE PlaylistId = ? AND TrackId = ?').run(t2, p, t1)
    b.db.prepare('DELETE FROM PlaylistTrack WHERE PlaylistId = ? AND TrackId = ?').run(p3, t3)
    b.db.prepare('INSERT INTO PlaylistTrack VALUES (?, ?)').run(p3, 10001)
    await mesh.converged(
      'composite-key changes on both sides',
      () =>
        has(b.db, 'SELECT 1 FROM PlaylistTrack WHERE PlaylistId = ? AND TrackId = ?', p, t2) &&
        !has(b.db, 'SELECT 1 FROM PlaylistTrack WHERE PlaylistId = ? AND TrackId = ?', p, t1) &&
        !has(a.db, 'SELECT 1 FROM PlaylistTrack WHERE PlaylistId = ? AND TrackId = ?', p3, t3) &&
        has(a.db, 'SELECT 1 FROM PlaylistTrack WHERE PlaylistId = ? AND TrackId = 10001', p3),
    )
    expect(a.errors()).toEqual([])
    expect(b.errors()).toEqual([])
  }, 60_000)
})
