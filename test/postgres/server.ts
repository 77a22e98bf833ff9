import { randomBytes } from 'node:crypto'
import pg from 'pg'

/**
 * The PostgreSQL server the tests use: 127.0.0.1:5432 with trust auth
 * (env `MESHMIRROR_PG_URL` points elsewhere: a URL of its `test` database).
 * Each test file makes its own database (`mm_<random>`) and drops it after.
 */
const BASE = process.env.MESHMIRROR_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** Why the server cannot be used, or undefined when it can. */
export async function serverProblem(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: BASE, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return undefined
  } catch (error) {
    return `no PostgreSQL server at ${BASE.replace(/^postgres:\/\/[^@]*@/, '')} (${(error as Error).message})`
  } finally {
    await client.end().catch(() => undefined)
  }
}

/**
 * Checks the server once per file: undefined when reachable; the reason
 * (for a skipped title) when not, outside CI. Under CI (env CI=true) an
 * unreachable server fails the file.
 */
export async function requireServer(): Promise<string | undefined> {
  const problem = await serverProblem()
  if (problem && process.env.CI === 'true') throw new Error(`PostgreSQL is required under CI: ${problem}`)
  return problem
}

export interface TestDatabase {
  url: string
  name: string
  /** A client on the database (closed by drop). */
  admin: pg.Client
  drop(): Promise<void>
}

/** Creates a fresh database `mm_<random>` on the server. */
export async function createDatabase(): Promise<TestDatabase> {
  const name = `mm_${randomBytes(6).toString('hex')}`
  const root = new pg.Client({ connectionString: BASE })
  await root.connect()
  await root.query(`CREATE DATABASE ${name}`)
  await root.end()
  const url = new URL(BASE)
  url.pathname = `/${name}`
  const admin = new pg.Client({ connectionString: url.toString() })
  await admin.connect()
  return {
    url: url.toString(),
    name,
    admin,
    async drop() {
      await admin.end().catch(() => undefined)
      const c = new pg.Client({ connectionString: BASE })
      await c.connect()
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await c.end()
      }
    },
  }
}
