import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { openSqliteRepository } from '../../src/repository/sqlite-repository.js'
import { tempDirs } from '../bridge/helpers/wait.js'
import { runCli } from './helpers.js'

const dirs = tempDirs()
afterEach(() => dirs.cleanup())

describe('meshmirror parked', () => {
  it('lists parked and refused documents, as text and JSON, changing nothing', async () => {
    const dir = dirs.make('parked')
    const file = join(dir, 'app.db')
    const db = new Database(file)
    db.exec('CREATE TABLE artist (id TEXT PRIMARY KEY, name TEXT NOT NULL)')
    db.close()
    const config = join(dir, 'meshmirror.config.json')
    writeFileSync(
      config,
      JSON.stringify({
        database: './app.db',
        mesh: { dir: './mesh' },
        meshId: 'm',
        secret: 'x'.repeat(16),
        tables: [{ table: 'artist' }],
      }),
    )
    // Before any peer ran: no meshmirror tables, an empty list.
    const empty = await runCli(['parked', '-c', config, '--json'])
    expect(empty.code, empty.stderr).toBe(0)
    expect(JSON.parse(empty.stdout)).toEqual({ database: file, parked: 0, refused: 0, entries: [] })

    const repo = await openSqliteRepository({ file, models: [{ name: 'artist' }] })
    await repo.transaction((tx) =>
      tx.park('artist', [
        {
          id: 'a1',
          state: 'parked',
          op: 'upsert',
          reason: 'waits for its parent',
          waitsFor: 'label(id)',
          waitsKey: '["7"]',
        },
        {
          id: 'a2',
          state: 'refused',
          op: 'upsert',
          reason: 'NOT NULL constraint failed: artist.name',
          code: 'SQLITE_CONSTRAINT_NOTNULL',
        },
      ]),
    )
    await repo.close()
    const json = await runCli(['parked', '-c', config, '--json'])
    expect(json.code).toBe(0)
    const report = JSON.parse(json.stdout)
    expect(report).toMatchObject({ parked: 1, refused: 1 })
    expect(
      report.entries.map((e: { collection: string; id: string; state: string }) => [e.collection, e.id, e.state]),
    ).toEqual([
      ['artist', 'a1', 'parked'],
      ['artist', 'a2', 'refused'],
    ])
    expect(report.entries[0]).toMatchObject({ waitsFor: 'label(id)', attempts: 1, op: 'upsert' })
    const refused = await runCli(['parked', '-c', config, '--state', 'refused'])
    expect(refused.stdout).toMatch(/1 parked, 1 refused/)
    expect(refused.stdout).toMatch(/refused +artist a2 .*NOT NULL constraint failed/)
    expect(refused.stdout).not.toMatch(/a1/)
  })

  it('refuses wrong input with a stable code', async () => {
    const dir = dirs.make('parked-bad')
    const missing = await runCli(['parked', '-c', join(dir, 'none.json'), '--json'])
    expect(missing.code).toBe(1)
    expect(JSON.parse(missing.stdout).error.code).toBe('INVALID_CONFIG')
    const state = await runCli(['parked', '-c', join(dir, 'none.json'), '--state', 'lost'])
    expect(state.code).toBe(1)
    expect(state.stderr).toMatch(/^error \[INVALID_OPTIONS\]: --state must be "parked" or "refused"/)
    const help = await runCli(['parked', '--help'])
    expect(help.stdout).toContain('Examples:')
    expect(help.stdout).toContain('Exit codes:')
  })
})
