// Keys "local" declared in code: defineModel carries it into the repository
// model, and the adapter passes document ids through the key untouched.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { defineModel } from '../../src/codegen/define-model.js'
import { openSqliteRepository } from '../../src/index.js'
import { tempDirs } from '../bridge/helpers/wait.js'

const dirs = tempDirs()
afterAll(() => dirs.cleanup())

describe('keys in code', () => {
  it('defineModel carries keys "local" into the model; the repository mirrors the table under document ids', async () => {
    const file = join(dirs.make('codegen-keys'), 'till.db')
    const db = new Database(file)
    db.exec('CREATE TABLE sales (id INTEGER PRIMARY KEY, total INTEGER NOT NULL)')
    db.prepare('INSERT INTO sales (total) VALUES (?)').run(12)
    const { adapter, definition } = defineModel({
      collection: 'sales',
      keys: 'local',
      fields: { id: { type: 'string', id: true }, total: 'integer' },
    })
    expect(definition.keys).toBe('local')
    const repo = await openSqliteRepository({ file, models: [definition] })
    try {
      const [row] = await repo.scan('sales', { limit: 10 })
      expect(row!.id).toBe(`${repo.device}:1`)
      const doc = adapter.toDocument(row!)
      expect(doc).toMatchObject({ _id: `${repo.device}:1`, total: 12 })
      expect(adapter.fromDocument({ _id: 'otherdevic:7', total: 3 })).toMatchObject({
        id: 'otherdevic:7',
        total: 3,
      })
    } finally {
      await repo.close()
      db.close()
    }
  })

  it('refuses a keys value other than "global" or "local"', () => {
    expect(() =>
      defineModel({ collection: 'sales', keys: 'mine' as 'local', fields: { id: { type: 'string', id: true } } }),
    ).toThrow(/keys must be "global" or "local"/)
  })
})
