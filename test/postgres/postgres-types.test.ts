// The Postgres repository against the catalog and the type table of
// docs/postgres.md: values round-trip between a SQLite till's repository
// and Postgres's without loss, a value a column cannot hold is refused with
// its reason (nothing else lost), a row whose parent is missing is parked
// until the parent lands, and a captured change is never acknowledged unseen.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openPostgresRepository, type PostgresRepository } from '../../src/postgres/postgres-repository.js'
import { Outcome, type Row } from '../../src/repository/repository.js'
import { openSqliteRepository } from '../../src/repository/sqlite-repository.js'
import { waitFor } from '../bridge/helpers/wait.js'
import { createDatabase, requireServer, type TestDatabase } from './server.js'

const PG_DDL = `
CREATE TABLE kinds (
  id uuid PRIMARY KEY,
  small integer, big bigint, exact numeric(20,6), approx double precision, single real,
  label varchar(40), flag boolean, at timestamptz, day date, doc jsonb, raw bytea
);
CREATE TABLE parents (id text PRIMARY KEY, name text NOT NULL);
CREATE TABLE children (
  parent_id text NOT NULL REFERENCES parents (id),
  n integer NOT NULL,
  note text,
  PRIMARY KEY (parent_id, n)
);
`

const SQLITE_DDL = `
CREATE TABLE kinds (
  id TEXT PRIMARY KEY,
  small INTEGER, big INTEGER, exact TEXT, approx REAL, single REAL,
  label TEXT, flag BOOLEAN, at TEXT, day TEXT, doc JSON, raw BLOB
);
`

const problem = await requireServer()

describe.skipIf(problem !== undefined)(
  `Postgres types, parking and capture${problem ? ` (skipped: ${problem})` : ''}`,
  () => {
    let db: TestDatabase
    let repo: PostgresRepository
    let dir: string

    beforeAll(async () => {
      db = await createDatabase()
      await db.admin.query(PG_DDL)
      repo = await openPostgresRepository({
        connectionString: db.url,
        models: [{ name: 'kinds' }, { name: 'children' }, { name: 'parents' }],
      })
      for (const m of repo.models()) await repo.setChangeCapture(m, true)
      dir = mkdtempSync(join(tmpdir(), 'mm-pg-types-'))
    })
    afterAll(async () => {
      await repo?.close()
      await db?.drop()
      rmSync(dir, { recursive: true, force: true })
    })

    const full: Row = {
      id: '0b6f2d1e-8a3c-4c55-9e0f-2a9d7c1b4e11',
      small: -42,
      big: { $int: '9007199254740993' },
      exact: '12345678901234.123456',
      approx: 0.1,
      single: 1.5,
      label: 'Café – 東京',
      flag: true,
      at: '2026-12-07T09:15:30.123456Z',
      day: '2026-12-07',
      doc: { a: [1, 'two', { three: null }], b: true },
      raw: { $bytes: Buffer.from([0, 1, 2, 250, 255]).toString('base64') },
    }

    it('reads the catalog: parents before children, composite keys', () => {
      expect(repo.models().indexOf('parents')).toBeLessThan(repo.models().indexOf('children'))
      expect(repo.keyColumns('children')).toEqual(['parent_id', 'n'])
      expect(repo.rowId('children', { parent_id: 'p1', n: 3 })).toBe('["p1",3]')
    })

    it('gives every type back exactly as written (the documented JSON forms)', async () => {
      await repo.upsert('kinds', [full])
      expect(await repo.get('kinds', full.id as string)).toEqual(full)
      const { rows } = await db.admin.query(
        "SELECT big::text, exact::text, flag, to_char(at AT TIME ZONE 'UTC', 'HH24:MI:SS.US') AS t, raw FROM kinds",
      )
      expect(rows[0]).toMatchObject({ big: '9007199254740993', exact: '12345678901234.123456', flag: true })
      expect(rows[0].t).toBe('09:15:30.123456')
      expect([...rows[0].raw]).toEqual([0, 1, 2, 250, 255])
    })

    it('reads what psql writes in the same forms, whatever the session time zone', async () => {
      const client = new pg.Client({ connectionString: db.url })
      await client.connect()
      await client.query("SET TimeZone = 'Asia/Tokyo'")
      await client.query(
        "INSERT INTO kinds (id, at, exact, approx, flag) VALUES ('11111111-2222-3333-4444-555555555555', '2026-01-01 09:00:00+09', 0.10, 'Infinity', false)",
      )
      await client.end()
      expect(await repo.get('kinds', '11111111-2222-3333-4444-555555555555')).toMatchObject({
        at: '2026-01-01T00:00:00.000Z',
        exact: '0.100000',
        approx: { $real: 'Infinity' },
        flag: false,
        small: null,
      })
    })

    it('captures the row before an update in the same forms as a read', async () => {
      const before = await repo.get('kinds', full.id as string)
      await db.admin.query(`UPDATE kinds SET small = 7 WHERE id = $1`, [full.id])
      const change = (await repo.pendingChanges({ models: ['kinds'], limit: 100 })).find(
        (c) => c.id === full.id && c.old !== null,
      )
      expect(change?.old).toEqual(before)
    })

    it('round-trips every value through a SQLite till’s repository and back without loss', async () => {
      const till = join(dir, 'till.db')
      const d = new Database(till)
      d.exec(SQLITE_DDL)
      d.close()
      const sqlite = await openSqliteRepository({ file: till, models: [{ name: 'kinds' }] })
      try {
        const fromPg = (await repo.get('kinds', full.id as string))!
        await sqlite.upsert('kinds', [fromPg])
        const onTill = (await sqlite.get('kinds', full.id as string))!
        expect(onTill).toEqual(fromPg)
        const back = { ...onTill, id: '99999999-2222-3333-4444-555555555555' }
        await repo.upsert('kinds', [back])
        expect(await repo.get('kinds', back.id as string)).toEqual(back)
      } finally {
        await sqlite.close()
      }
    })

    it('refuses a value its column cannot hold, with the reason, and writes the rest of the batch', async () => {
      const ok = '21111111-2222-3333-4444-555555555555'
      const result = await repo.applyRemoteBatch!({
        groups: [
          {
            model: 'kinds',
            writes: [
              { id: ok, row: { id: ok, small: 1 }, hash: 'h1', doc: null },
              {
                id: '31111111-2222-3333-4444-555555555555',
                row: { id: '31111111-2222-3333-4444-555555555555', small: 'many' },
                hash: 'h2',
                doc: null,
              },
              {
                id: '41111111-2222-3333-4444-555555555555',
                row: { id: '41111111-2222-3333-4444-555555555555', flag: 2 },
                hash: 'h3',
                doc: null,
              },
              {
                id: '51111111-2222-3333-4444-555555555555',
                row: { id: '51111111-2222-3333-4444-555555555555', label: { not: 'text' } },
                hash: 'h4',
                doc: null,
              },
            ],
            hold: [],
          },
        ],
        checkpoints: [{ key: 'cursor', value: 'after-bad' }],
      })
      expect(result.groups[0]!.outcomes).toEqual([Outcome.changed, Outcome.refused, Outcome.refused, Outcome.refused])
      expect(await repo.get('kinds', ok)).toMatchObject({ small: 1 })
      expect(await repo.checkpoint('cursor')).toBe('after-bad')
      const refused = await repo.parked({ state: 'refused', limit: 10 })
      const byId = Object.fromEntries(refused.map((r) => [r.id, r]))
      expect(byId['31111111-2222-3333-4444-555555555555']).toMatchObject({ code: 'PG_22P02' })
      expect(byId['41111111-2222-3333-4444-555555555555']?.reason).toMatch(/boolean holds 0 or 1/)
      expect(byId['51111111-2222-3333-4444-555555555555']).toMatchObject({ code: 'DOCUMENT_REJECTED' })
      // Nothing of a refused row was written, and no remote write was captured.
      expect(await repo.get('kinds', '31111111-2222-3333-4444-555555555555')).toBeUndefined()
      expect((await repo.pendingChanges({ models: ['kinds'], limit: 100 })).map((c) => c.id)).not.toContain(ok)
    })

    it('parks a child whose parent is missing, and names it when the parent lands', async () => {
      const first = await repo.applyRemoteBatch!({
        groups: [
          {
            model: 'children',
            writes: [{ id: '["p1",1]', row: { parent_id: 'p1', n: 1, note: 'early' }, hash: 'c1', doc: null }],
            hold: [],
          },
        ],
        checkpoints: [],
      })
      expect(first.groups[0]!.outcomes).toEqual([Outcome.parked])
      expect(await repo.parked({ state: 'parked', limit: 10 })).toMatchObject([
        { model: 'children', id: '["p1",1]', waitsFor: 'parents(id)' },
      ])
      const second = await repo.applyRemoteBatch!({
        groups: [
          { model: 'parents', writes: [{ id: 'p1', row: { id: 'p1', name: 'one' }, hash: 'p', doc: null }], hold: [] },
        ],
        checkpoints: [],
      })
      expect(second.unblocked.get('children')).toEqual(['["p1",1]'])
      // Parent and child in one batch, child first: written parents first.
      const third = await repo.applyRemoteBatch!({
        groups: [
          {
            model: 'children',
            writes: [{ id: '["p2",1]', row: { parent_id: 'p2', n: 1, note: null }, hash: 'c2', doc: null }],
            hold: [],
          },
          { model: 'parents', writes: [{ id: 'p2', row: { id: 'p2', name: 'two' }, hash: 'p2', doc: null }], hold: [] },
        ],
        checkpoints: [],
      })
      expect(third.errors).toEqual([])
      expect(await repo.get('children', '["p2",1]')).toEqual({ parent_id: 'p2', n: 1, note: null })
    })

    it('never acknowledges a change whose transaction commits after a later one was read', async () => {
      await repo.transaction((tx) => tx.acknowledge(Number.MAX_SAFE_INTEGER, repo.models()))
      const slow = new pg.Client({ connectionString: db.url })
      await slow.connect()
      try {
        await slow.query('BEGIN')
        await slow.query("INSERT INTO parents VALUES ('slow', 'began first')")
        await db.admin.query("INSERT INTO parents VALUES ('fast', 'committed first')")
        const seen = await repo.pendingChanges({ models: ['parents'], limit: 10 })
        expect(seen.map((c) => c.id)).toEqual(['fast'])
        await slow.query('COMMIT')
        await repo.transaction((tx) => tx.acknowledge(seen.at(-1)!.seq, ['parents']))
        expect((await repo.pendingChanges({ models: ['parents'], limit: 10 })).map((c) => c.id)).toEqual(['slow'])
      } finally {
        await slow.end()
      }
    })

    it('never overwrites an app write that commits while a remote batch waits for its row', async () => {
      await db.admin.query("INSERT INTO parents VALUES ('contested', 'before')")
      // Sent and acknowledged: nothing of the row waits to be sent.
      await repo.pendingChanges({ models: repo.models(), limit: 1000 })
      await repo.transaction((tx) => tx.acknowledge(Number.MAX_SAFE_INTEGER, repo.models()))
      const app = new pg.Client({ connectionString: db.url })
      await app.connect()
      try {
        await app.query('BEGIN')
        await app.query("UPDATE parents SET name = 'the app' WHERE id = 'contested'")
        const retries = repo.stats().busyRetries
        const applying = repo.applyRemoteBatch!({
          groups: [
            {
              model: 'parents',
              writes: [
                { id: 'contested', row: { id: 'contested', name: 'the mesh' }, hash: 'm', doc: null },
                { id: 'other', row: { id: 'other', name: 'the mesh' }, hash: 'o', doc: null },
              ],
              hold: [],
            },
          ],
          checkpoints: [],
        })
        // The batch saw no captured change (the app has not committed) and waits for the row.
        await waitFor(
          async () =>
            (
              await db.admin.query(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
              )
            ).rowCount,
          { message: 'the batch waiting for the app’s row' },
        )
        await app.query('COMMIT')
        const result = await applying
        expect(result.groups[0]!.outcomes).toEqual([Outcome.held, Outcome.written])
        expect(repo.stats().busyRetries).toBeGreaterThan(retries)
      } finally {
        await app.end()
      }
      expect(await repo.get('parents', 'contested')).toEqual({ id: 'contested', name: 'the app' })
      expect(await repo.get('parents', 'other')).toEqual({ id: 'other', name: 'the mesh' })
      expect((await repo.pendingChanges({ models: ['parents'], limit: 10 })).map((c) => c.id)).toEqual(['contested'])
    })

    it('opens its LISTEN connection again when the server drops it, and wakes the listeners', async () => {
      let wakes = 0
      const off = repo.onChanges(() => {
        wakes++
      })
      try {
        const { rows } = await db.admin.query(
          "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        expect(rows.length).toBe(1)
        await waitFor(async () => (await repo.state()).listenReconnects > 0, { message: 'the LISTEN connection back' })
        const before = wakes
        await db.admin.query("INSERT INTO parents VALUES ('after-drop', 'seen')")
        await waitFor(() => wakes > before, { message: 'a wake-up after the reconnection' })
        expect((await repo.state()).listening).toBe(true)
      } finally {
        off()
      }
    })

    it('refuses a model it cannot mirror with a clear error', async () => {
      await db.admin.query('CREATE TABLE nokey (a text)')
      await expect(
        openPostgresRepository({ connectionString: db.url, models: [{ name: 'nokey' }], syncSchema: 'other_mm' }),
      ).rejects.toMatchObject({ code: 'INVALID_MODEL' })
      await expect(
        openPostgresRepository({ connectionString: db.url, models: [{ name: 'parents', keys: 'local' }] }),
      ).rejects.toMatchObject({ code: 'INVALID_MODEL' })
      await expect(openPostgresRepository({ connectionString: 'file.db', models: [] })).rejects.toMatchObject({
        code: 'INVALID_OPTIONS',
      })
    })
  },
)
