// The status file a peer keeps in its mesh directory: a write that fails (a
// full disk, a path taken by something else) is said once and tried again,
// and the peer's snapshots go on meanwhile.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load-config.js'
import { SnapshotChanges } from '../../src/config/peer-snapshot.js'
import { openPeer } from '../../src/config/start-peer.js'
import { type PeerSnapshot, readSnapshot, STATUS_FILE } from '../../src/config/status-snapshot.js'
import { silentLogger } from '../../src/logger.js'
import { tempDirs, waitFor } from '../bridge/helpers/wait.js'

const dirs = tempDirs()
const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  dirs.cleanup()
})

it('says once that the status file cannot be written, keeps taking snapshots, and writes it again when it can', async () => {
  const dir = dirs.make('status-file')
  const app = new Database(join(dir, 'app.db'))
  app.exec('CREATE TABLE items (id TEXT PRIMARY KEY, name TEXT NOT NULL)')
  cleanup.push(() => app.close())
  writeFileSync(
    join(dir, 'meshmirror.json'),
    JSON.stringify({
      database: './app.db',
      mesh: { dir: './mesh' },
      meshId: 'status-file',
      secret: 'a status file secret',
      tables: [{ table: 'items' }],
      statusIntervalMs: 50,
    }),
  )
  const warnings: { message: string; fields?: Record<string, unknown> }[] = []
  const logger = {
    ...silentLogger,
    warn: (message: string, fields?: Record<string, unknown>) => warnings.push({ message, fields }),
  }
  const peer = await openPeer(await loadConfig(join(dir, 'meshmirror.json')), { logger })
  cleanup.push(() => peer.close())
  await peer.start()
  const meshDir = peer.meshDir
  await waitFor(() => readSnapshot(meshDir)?.phase === 'live', { timeout: 10_000, message: 'a live status file' })

  // Something else takes the path the status file is written through first: every write fails.
  const blocker = join(meshDir, `${STATUS_FILE}.${process.pid}.tmp`)
  mkdirSync(blocker)
  const snapshots: number[] = []
  peer.on('snapshot', (s) => snapshots.push(s.tables.items ?? -1))
  app.prepare("INSERT INTO items VALUES ('a', 'first')").run()
  await waitFor(() => warnings.some((w) => w.message.includes('cannot write the status file')), {
    timeout: 10_000,
    message: 'a warning about the status file',
  })
  app.prepare("INSERT INTO items VALUES ('b', 'second')").run()
  // The snapshots go on, and show the rows; the file still holds the older state.
  await waitFor(() => snapshots.includes(2), { timeout: 10_000, message: 'snapshots with both rows' })
  expect(readSnapshot(meshDir)?.tables.items).toBe(0)
  expect(warnings.filter((w) => w.message.includes('cannot write the status file'))).toHaveLength(1)
  expect(warnings[0]!.fields?.error).toMatch(/EISDIR|illegal operation on a directory/)

  // Once the path is free, the next snapshot is written, though nothing changed since the failed ones.
  rmSync(blocker, { recursive: true })
  await waitFor(() => readSnapshot(meshDir)?.tables.items === 2, { timeout: 10_000, message: 'the file written again' })
}, 30_000)

it('writes a snapshot whose write failed again at the next try, though it shows nothing new', () => {
  const changes = new SnapshotChanges(10_000)
  const s = { phase: 'live', tables: { items: 2 } } as unknown as PeerSnapshot
  expect(changes.take(s, 0)).toBe(true)
  expect(changes.take(s, 50)).toBe(false)
  // Its write failed: the same snapshot is due again at once.
  changes.forget()
  expect(changes.take(s, 100)).toBe(true)
  expect(changes.take(s, 150)).toBe(false)
})
