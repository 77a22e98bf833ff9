import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { type CliProcess, startCli } from '../cli/helpers.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const running: CliProcess[] = []
const dbs: Database.Database[] = []

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null) p.child.kill('SIGKILL')
    await p.exited
  }
  for (const db of dbs.splice(0)) db.close()
  dirs.cleanup()
})

/** Every declared type the app might use, and a column without one. */
const DDL = `CREATE TABLE vals (
  id INTEGER PRIMARY KEY,
  i INTEGER, r REAL, t TEXT, b BLOB, n NUMERIC, d DECIMAL(10,2), dt DATETIME, bo BOOLEAN,
  u
)`
const COLUMNS = ['i', 'r', 't', 'b', 'n', 'd', 'dt', 'bo', 'u'] as const

// better-sqlite3 binds a JS number as REAL and a bigint as INTEGER: each value below has the class it says.
const LONG = 'x'.repeat(50_000) + 'é🎉'.repeat(25_000)
const UNICODE = 'Zoë 🎉👩🏽‍💻 e\u0301 \u0645\u0631\u062d\u0628\u0627 \u{1F1F0}\u{1F1EA} ∑'
const BLOB = Buffer.concat([Buffer.from([0, 0, 1, 0]), randomBytes(300), Buffer.from([0])])
const LOOSE: unknown[] = [
  2n,
  2.0,
  1.5,
  '2',
  '',
  LONG,
  UNICODE,
  null,
  BLOB,
  Buffer.alloc(0),
  2n ** 53n + 1n,
  -(2n ** 63n),
  2n ** 63n - 1n,
  -7n,
  1e20,
  -0.25,
  Number.POSITIVE_INFINITY,
]

/** Rows covering every storage class in every column. */
function rows(): Record<string, unknown>[] {
  const typed: Record<string, unknown[]> = {
    i: [2n ** 53n + 1n, -(2n ** 63n), 2n ** 63n - 1n, 0n, 42n, null],
    r: [2.0, 1.5, 1e300, -0.5, 2n ** 53n + 1n, null],
    t: [UNICODE, '', LONG, 'plain', null],
    b: [BLOB, Buffer.alloc(0), Buffer.from('text as bytes'), null],
    n: [2n, 1.5, '2.50', 'abc', 2n ** 63n - 1n, 1e20, null, BLOB],
    d: [12.34, 100n, '99.99', null],
    dt: ['2024-01-02 03:04:05', 1700000000n, 2460000.5, null],
    bo: [0n, 1n, 'yes', null, 2.5],
  }
  return LOOSE.map((u, k) => {
    const row: Record<string, unknown> = { id: BigInt(k + 1), u }
    for (const c of COLUMNS) if (c !== 'u') row[c] = typed[c]![k % typed[c]!.length]
    return row
  })
}

function appDb(file: string): Database.Database {
  const db = new Database(file)
  db.pragma('busy_timeout = 10000')
  db.exec(DDL)
  dbs.push(db)
  return db
}

function startPeer(dir: string, name: string, extra: Record<string, unknown>): CliProcess {
  const file = join(dir, `${name}.config.json`)
  const config = {
    database: `./${name}.db`,
    mesh: { dir: `./${name}-mesh` },
    meshId: 'value-fidelity',
    secret: 'a test secret',
    tables: [{ table: 'vals', keys: 'global' }],
    ...extra,
  }
  writeFileSync(file, JSON.stringify(config, null, 2))
  const p = startCli(['peer', '--json', '--config', file])
  running.push(p)
  return p
}

/** Every value as SQLite sees it: its storage class and its exact SQL literal. */
function exact(db: Database.Database): string[] {
  const cols = COLUMNS.map((c) => `typeof(${c}), quote(${c})`).join(', ')
  return (db.prepare(`SELECT id, ${cols} FROM vals ORDER BY id`).raw().all() as unknown[][]).map((r) => r.join(' | '))
}

describe('value fidelity between two peers', () => {
  it('keeps every storage class exact, typeof included, on insert and on update, both ways', {
    timeout: 120_000,
  }, async () => {
    const dir = dirs.make('fidelity')
    const a = appDb(join(dir, 'a.db'))
    const b = appDb(join(dir, 'b.db'))
    const insert = a.prepare(
      `INSERT INTO vals (id, ${COLUMNS.join(', ')}) VALUES (@id, ${COLUMNS.map((c) => `@${c}`).join(', ')})`,
    )
    a.transaction(() => {
      for (const row of rows()) insert.run(row)
    })()
    const source = exact(a)
    // The fixture itself holds what it claims: the classes SQLite's affinities leave.
    const loose = a.prepare('SELECT typeof(u) FROM vals ORDER BY id').pluck().all()
    expect(loose).toEqual([
      'integer',
      'real',
      'real',
      'text',
      'text',
      'text',
      'text',
      'null',
      'blob',
      'blob',
      'integer',
      'integer',
      'integer',
      'integer',
      'real',
      'real',
      'real',
    ])

    const pa = startPeer(dir, 'a', { listen: { host: '127.0.0.1', port: 0 } })
    const port = (await pa.event('live')).port as number
    const pb = startPeer(dir, 'b', { peers: [`ws://127.0.0.1:${port}`] })
    await pb.event('live')

    await waitFor(() => exact(b).length === source.length, { timeout: 30_000, message: 'rows on B' })
    expect(exact(b)).toEqual(source)

    // Updates on B: a changed BLOB, a changed big integer, REAL 2.0 → 3.0 and INTEGER 2 → REAL 2.0
    // in the untyped column, a BOOLEAN column's 0 → 1; each alone in its row.
    const bytes = Buffer.concat([Buffer.from([0]), randomBytes(64), Buffer.from([0, 0])])
    const update = (sql: string, ...params: unknown[]) => b.prepare(sql).run(...params)
    update('UPDATE vals SET u = ? WHERE id = 9', bytes)
    update('UPDATE vals SET u = ? WHERE id = 11', 2n ** 53n + 3n)
    update('UPDATE vals SET i = ? WHERE id = 2', 2n ** 63n - 2n)
    update('UPDATE vals SET u = 3.0 WHERE id = 2')
    update('UPDATE vals SET u = 2.0 WHERE id = 1')
    update('UPDATE vals SET b = ? WHERE id = 5', Buffer.from([0, 0, 0]))
    update('UPDATE vals SET bo = 1 WHERE id = 1')
    const changed = exact(b)
    expect(changed).not.toEqual(source)
    await waitFor(() => JSON.stringify(exact(a)) === JSON.stringify(changed), {
      timeout: 30_000,
      message: "B's updates on A",
    })
    expect(a.prepare('SELECT typeof(u), quote(u) FROM vals WHERE id IN (1, 2) ORDER BY id').raw().all()).toEqual([
      ['real', '2.0'],
      ['real', '3.0'],
    ])
    expect(a.prepare('SELECT u FROM vals WHERE id = 9').pluck().get()).toEqual(bytes)

    // And back from A: a big integer in the untyped column becomes a small one, a BLOB becomes text.
    a.prepare('UPDATE vals SET u = 5 WHERE id = 12').run()
    a.prepare("UPDATE vals SET u = 'now text' WHERE id = 10").run()
    const back = exact(a)
    await waitFor(() => JSON.stringify(exact(b)) === JSON.stringify(back), {
      timeout: 30_000,
      message: "A's updates on B",
    })
  })
})
