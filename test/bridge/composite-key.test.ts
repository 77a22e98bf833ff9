import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { openSqliteRepository } from '../../src/index.js'
import { tempDirs } from './helpers/wait.js'

const dirs = tempDirs()
const open: { close(): unknown }[] = []

afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close()
  dirs.cleanup()
})

const DDL = `
CREATE TABLE playlist_track (
  playlist_id INTEGER NOT NULL,
  track TEXT NOT NULL,
  position INTEGER,
  PRIMARY KEY (playlist_id, track)
) WITHOUT ROWID;`

describe('a table with a composite primary key', () => {
  it('is read, written, scanned and deleted by its key, and its writes are captured under the JSON-array id', async () => {
    const file = join(dirs.make(), 'app.db')
    const app = new Database(file)
    open.push(app)
    app.exec(DDL)
    const repo = await openSqliteRepository({ file, models: [{ name: 'playlist_track' }] })
    open.push(repo)
    expect(repo.keyColumns('playlist_track')).toEqual(['playlist_id', 'track'])
    await repo.setChangeCapture('playlist_track', true)

    app.prepare('INSERT INTO playlist_track VALUES (?, ?, ?)').run(1, 'é "quoted"', 1)
    app.prepare('INSERT INTO playlist_track VALUES (?, ?, ?)').run(1, '🎵', 2)
    app.prepare('INSERT INTO playlist_track VALUES (?, ?, ?)').run(2, 'a', 1)
    app.prepare("UPDATE playlist_track SET position = 5 WHERE playlist_id = 2 AND track = 'a'").run()
    app.prepare("UPDATE playlist_track SET track = 'b' WHERE playlist_id = 2 AND track = 'a'").run()
    app.prepare("DELETE FROM playlist_track WHERE playlist_id = 1 AND track = '🎵'").run()

    const changes = await repo.pendingChanges({ models: ['playlist_track'], limit: 100 })
    expect(changes.map((c) => [c.op, c.id])).toEqual([
      ['upsert', '[1,"é \\"quoted\\""]'],
      ['upsert', '[1,"🎵"]'],
      ['upsert', '[2,"a"]'],
      ['upsert', '[2,"a"]'],
      ['delete', '[2,"a"]'],
      ['upsert', '[2,"b"]'],
      ['delete', '[1,"🎵"]'],
    ])
    // The id SQL computes is the one the repository computes from the row.
    for (const c of changes) {
      const row = await repo.get('playlist_track', c.id)
      if (row) expect(repo.rowId('playlist_track', row)).toBe(c.id)
    }
    expect(changes[3]!.old).toEqual({ playlist_id: 2, track: 'a', position: 1 })

    const id = '[1,"é \\"quoted\\""]'
    expect(await repo.get('playlist_track', id)).toEqual({ playlist_id: 1, track: 'é "quoted"', position: 1 })
    const many = await repo.getMany('playlist_track', [id, '[2,"b"]', '[9,"none"]'])
    expect([...many.keys()].sort()).toEqual(['[1,"é \\"quoted\\""]', '[2,"b"]'])

    await repo.upsert('playlist_track', [{ playlist_id: 3, track: 'x', position: 7 }])
    await repo.upsert('playlist_track', [{ playlist_id: 3, track: 'x', position: 8 }])
    const first = await repo.scan('playlist_track', { limit: 2 })
    const rest = await repo.scan('playlist_track', { after: repo.rowId('playlist_track', first[1]!), limit: 10 })
    expect([...first, ...rest].map((r) => [r.playlist_id, r.track, r.position])).toEqual([
      [1, 'é "quoted"', 1],
      [2, 'b', 5],
      [3, 'x', 8],
    ])
    expect(await repo.countUnmirrored('playlist_track')).toBe(3)
    await repo.transaction((tx) =>
      tx.putSyncStates('playlist_track', [{ id: '[2,"b"]', hash: 'h', origin: 'local', doc: null }]),
    )
    expect(await repo.countUnmirrored('playlist_track')).toBe(2)

    expect(await repo.delete('playlist_track', ['[3,"x"]', '[3,"y"]'])).toBe(1)
    expect(await repo.count('playlist_track')).toBe(2)
    await expect(repo.get('playlist_track', '[3]')).rejects.toMatchObject({ code: 'DOCUMENT_REJECTED' })
    await expect(repo.get('playlist_track', 'not json')).rejects.toMatchObject({ code: 'DOCUMENT_REJECTED' })
  })
})
