import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig, parseConfig } from '../../src/config/load-config.js'
import { openPeer } from '../../src/config/start-peer.js'
import { ErrorCode, MeshmirrorError } from '../../src/errors.js'
import { mutateFrame, mutations } from '../replication/fuzz-frames.js'

/**
 * The config loader fed random and mutated configs: JSON text, modules,
 * YAML (not a supported format), wrong types, unknown keys, huge values.
 * Every failure is `INVALID_CONFIG` (or another stable code for a config
 * that is well-formed but cannot run here) naming the file and the key, and
 * nothing is written: no database, mesh directory or other file.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 1000)
const TIMEOUT = Math.max(120_000, RUNS * 150)

let dir: string
let dbDigest: string
let n = 0

const valid = {
  database: './app.db',
  mesh: { dir: './app-mesh', strategy: 'shared' },
  meshId: 'fuzz-config',
  secret: 'a config secret',
  listen: { host: '127.0.0.1', port: 0 },
  peers: ['ws://127.0.0.1:1'],
  discovery: false,
  reconnect: { minMs: 100, maxMs: 1000 },
  tables: [{ table: 'customers', keys: 'global', counters: ['stock'], exclude: ['note'] }],
  settings: { batchSize: 10 },
  statusIntervalMs: 1000,
}

const digest = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')
const listing = () => readdirSync(dir).sort()

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mm-config-fuzz-'))
  const db = new Database(join(dir, 'app.db'))
  db.exec('CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, stock INTEGER, note TEXT)')
  db.close()
  dbDigest = digest(join(dir, 'app.db'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/**
 * The error is a stable one. A config error says which file, and which key
 * unless the whole file is wrong; a config that is well-formed but cannot
 * run here (a port taken, a directory name the file system refuses as too
 * long) says which address or directory.
 */
function assertClearError(error: unknown, file: string): void {
  expect(error).toBeInstanceOf(MeshmirrorError)
  const e = error as MeshmirrorError
  expect([ErrorCode.INVALID_CONFIG, ErrorCode.ADDRESS_IN_USE, ErrorCode.DIRECTORY_UNUSABLE], e.message).toContain(
    e.code,
  )
  if (e.code === ErrorCode.DIRECTORY_UNUSABLE) expect(e.message).toMatch(/^Cannot use \/.*: ENAMETOOLONG/)
  if (e.code === ErrorCode.INVALID_CONFIG) {
    expect(e.message).toContain(file)
    expect(e.details.file).toBe(file)
    // A key path, or the whole file (not JSON, not an object, no default export…).
    if (e.details.key === undefined)
      expect(e.message).toMatch(
        /\(top level\)|not valid JSON|cannot be loaded|cannot be read|no default export|not a file/,
      )
    else expect(typeof e.details.key).toBe('string')
  }
}

/** Writes `text` as a config file, loads it and, when it loads, opens a peer on it; checks what was written. */
async function tryConfig(text: string, ext = 'json'): Promise<'loaded' | 'refused'> {
  const file = join(dir, `c${++n}.${ext}`)
  writeFileSync(file, text)
  const before = listing()
  let outcome: 'loaded' | 'refused' = 'refused'
  try {
    const config = await loadConfig(file)
    outcome = 'loaded'
    // A config that loads may still be refused on opening (a table it cannot mirror, a host not of this machine).
    const peer = await openPeer(config)
    await peer.close()
    rmSync(peer.meshDir, { recursive: true, force: true })
  } catch (error) {
    assertClearError(error, file)
    // Refused: nothing written, the database untouched.
    expect(listing()).toEqual(before)
    expect(digest(join(dir, 'app.db'))).toBe(dbDigest)
  }
  rmSync(file)
  return outcome
}

describe(`the config loader fed ${RUNS} malformed configs of each kind`, () => {
  it(
    'a valid config with hostile values, removed keys and unknown keys',
    async () => {
      let loaded = 0
      await fc.assert(
        fc.asyncProperty(mutations, async (muts) => {
          if ((await tryConfig(mutateFrame(valid, muts))) === 'loaded') loaded++
        }),
        { numRuns: RUNS },
      )
      // The valid config itself loads: the refusals above are the mutations' doing.
      expect(await tryConfig(JSON.stringify(valid))).toBe('loaded')
      expect(loaded).toBeLessThan(RUNS)
    },
    TIMEOUT,
  )

  it(
    'random JSON, random text, truncated and padded files',
    async () => {
      const text = fc.oneof(
        fc.jsonValue().map((v) => JSON.stringify(v)),
        fc.string({ unit: 'binary' }),
        fc.nat(200).map((k) => JSON.stringify(valid).slice(0, k)),
        fc.constantFrom('', '\ufeff{}', 'null', '[]', '"config"', '1e999', `\ufeff${JSON.stringify(valid)}`),
        fc.constantFrom(
          `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
          JSON.stringify({ ...valid, tables: Array.from({ length: 5000 }, () => ({ table: 1 })) }),
          JSON.stringify({
            ...valid,
            context: Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, [i]])),
          }),
          `{"__proto__":{"database":"./app.db"},${JSON.stringify(valid).slice(1)}`,
          JSON.stringify({ ...valid, secret: '$MESHMIRROR_FUZZ_UNSET' }),
        ),
      )
      await fc.assert(
        fc.asyncProperty(text, async (t) => {
          await tryConfig(t)
        }),
        { numRuns: RUNS },
      )
    },
    TIMEOUT,
  )

  it('YAML, and modules whose default export is malformed', async () => {
    const cases: [string, string][] = [
      ['database: ./app.db\nmeshId: x\n', 'yaml'],
      ['database: ./app.db\n', 'yml'],
      ['export default 5', 'mjs'],
      ['export default null', 'mjs'],
      ['export default { database: 1n }', 'mjs'],
      ['export default { get database() { throw new Error("boom") } }', 'mjs'],
      ['export default new Proxy({}, { ownKeys() { throw new Error("trap") } })', 'mjs'],
      ['export const other = {}', 'mjs'],
      ['throw new Error("at import")', 'mjs'],
      ['export default {', 'mjs'],
      [`const c = ${JSON.stringify(valid)}; c.self = c; export default c`, 'mjs'],
    ]
    for (const [text, ext] of cases) expect(await tryConfig(text, ext), text).toBe('refused')
  })

  it('parseConfig refuses any value that is not a config the same way', () => {
    fc.assert(
      fc.property(
        fc.anything({ withBigInt: true, withDate: true, withMap: true, withNullPrototype: true }),
        (input) => {
          try {
            parseConfig(input, 'fuzz.json', dir)
          } catch (error) {
            assertClearError(error, 'fuzz.json')
            return
          }
          throw new Error(`accepted ${String(input)}`)
        },
      ),
      { numRuns: RUNS },
    )
  })
})
