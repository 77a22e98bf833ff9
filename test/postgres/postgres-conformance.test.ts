import { afterAll, describe, it } from 'vitest'
import { openPostgresRepository } from '../../src/postgres/postgres-repository.js'
import { runRepositoryConformance } from '../../src/testing.js'
import { createDatabase, requireServer, type TestDatabase } from './server.js'

// The Postgres repository passes the Repository port's contract, as the SQLite one does:
// each test gets its own pair of schemas (the app's tables, meshmirror's) in this run's database.
const problem = await requireServer()
if (problem) {
  describe(`repository conformance: Postgres (skipped: ${problem})`, () => {
    it.skip('needs a PostgreSQL server', () => undefined)
  })
} else {
  const db: TestDatabase = await createDatabase()
  afterAll(() => db.drop())
  let n = 0
  runRepositoryConformance(
    async (models) => {
      const schema = `app_${++n}`
      await db.admin.query(`CREATE SCHEMA ${schema}`)
      const repository = await openPostgresRepository({
        connectionString: db.url,
        models,
        schema,
        syncSchema: `${schema}_mm`,
      })
      return {
        repository,
        cleanup: async () => {
          await db.admin.query(`DROP SCHEMA ${schema} CASCADE; DROP SCHEMA IF EXISTS ${schema}_mm CASCADE`)
        },
      }
    },
    { name: 'Postgres' },
  )
}
