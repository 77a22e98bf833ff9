import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { silentLogger } from '../logger.js'
import { ChangePoller } from './change-poller.js'
import type { ModelStatements } from './sqlite-statements.js'

const open: (() => void)[] = []
afterEach(() => {
  for (const close of open.splice(0).reverse()) close()
})

/** A database with an outbox, a reader the poller watches through, and a writer standing for the app's connection. */
function database() {
  const dir = mkdtempSync(join(tmpdir(), 'mm-poller-'))
  const file = join(dir, 'app.db')
  const writer = new Database(file)
  writer.pragma('journal_mode = WAL')
  writer.exec('CREATE TABLE _meshmirror_outbox (seq INTEGER PRIMARY KEY, v TEXT)')
  const reader = new Database(file, { readonly: true })
  const statements = {
    maxOutboxSeq: () => reader.prepare('SELECT coalesce(max(seq), 0) FROM _meshmirror_outbox').pluck().get() as number,
  } as unknown as ModelStatements
  open.push(() => {
    reader.close()
    writer.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const write = () => writer.prepare('INSERT INTO _meshmirror_outbox (v) VALUES (?)').run('x')
  return { dir, file, reader, statements, write }
}

function waitFor(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const tick = () => {
      if (pred()) return resolve()
      if (Date.now() - started > timeoutMs) return reject(new Error('condition not met'))
      setTimeout(tick, 5)
    }
    tick()
  })
}

/** An empty database file in a directory of its own, `name`, under `dir`: a file to watch apart from the one written. */
function emptyDatabaseIn(dir: string, name: string): string {
  mkdirSync(join(dir, name))
  const file = join(dir, name, 'app.db')
  new Database(file).close()
  return file
}

describe('ChangePoller', () => {
  it('is woken by a commit of another connection through the file watch, long before any poll', async () => {
    const db = database()
    // A poll period of ten minutes: only the watch can tell within the test.
    const poller = new ChangePoller(db.reader, db.statements, 600_000, db.file)
    let calls = 0
    expect(poller.detection()).toEqual({ mode: 'off', pollMs: 600_000 })
    const remove = poller.add(() => calls++)
    expect(poller.mode).toBe('watch')
    expect(poller.detection()).toEqual({ mode: 'watch', pollMs: 600_000 })
    db.write()
    await waitFor(() => calls === 1)
    db.write()
    db.write()
    await waitFor(() => calls >= 2)
    remove()
    poller.stop()
  })

  it('watches the directory of the file a symbolic link points to, where SQLite writes the WAL', async () => {
    const db = database()
    // The app opens its database through a link in a directory of its own (a data directory mounted elsewhere).
    mkdirSync(join(db.dir, 'app'))
    const link = join(db.dir, 'app', 'till.db')
    symlinkSync(db.file, link)
    // A poll period of ten minutes: only the watch can tell within the test.
    const poller = new ChangePoller(db.reader, db.statements, 600_000, link)
    let calls = 0
    poller.add(() => calls++)
    db.write()
    await waitFor(() => calls === 1)
    db.write()
    await waitFor(() => calls === 2)
    expect(poller.mode).toBe('watch')
    poller.stop()
  })

  it('polls every intervalMs when it has no file to watch', async () => {
    const db = database()
    const poller = new ChangePoller(db.reader, db.statements, 10)
    let calls = 0
    poller.add(() => calls++)
    expect(poller.mode).toBe('poll')
    expect(poller.detection()).toEqual({ mode: 'poll', pollMs: 10, reason: 'disabled' })
    db.write()
    await waitFor(() => calls === 1)
    poller.stop()
  })

  it('checks again shortly after a notification that came before its commit was visible', async () => {
    const db = database()
    // The watched directory gets the notification, the commit lands where nothing is watched: as when an
    // app's WAL write is announced and the commit becomes visible only after the app synced the WAL.
    const watchedFile = emptyDatabaseIn(db.dir, 'watched')
    // A poll period of ten minutes: only the checks after the notification can find the commit within the test.
    const poller = new ChangePoller(db.reader, db.statements, 600_000, watchedFile)
    let calls = 0
    poller.add(() => calls++)
    writeFileSync(`${watchedFile}-wal`, 'x')
    // The notification's own check runs first and finds nothing.
    await new Promise((resolve) => setTimeout(resolve, 20))
    db.write()
    await waitFor(() => calls === 1)
    expect(poller.mode).toBe('watch')
    poller.stop()
  })

  it('goes back to the fast poll for good when commits arrive that no notification announced', async () => {
    const db = database()
    // Watching a directory where nothing happens stands for a file system that delivers no notifications.
    const quietFile = emptyDatabaseIn(db.dir, 'quiet')
    const warnings: { message: string; fields?: Record<string, unknown> }[] = []
    const logger = {
      ...silentLogger,
      warn: (message: string, fields?: Record<string, unknown>) => warnings.push({ message, fields }),
    }
    const poller = new ChangePoller(db.reader, db.statements, 10, quietFile, logger)
    let calls = 0
    poller.add(() => calls++)
    expect(poller.mode).toBe('watch')
    expect(poller.detection()).toEqual({ mode: 'watch', pollMs: 1000 })
    // Two slow polls find commits nothing announced; every commit is still delivered.
    db.write()
    await waitFor(() => calls === 1)
    db.write()
    await waitFor(() => poller.mode === 'poll')
    await waitFor(() => calls === 2)
    db.write()
    await waitFor(() => calls === 3)
    // Said once, and shown for what it is.
    expect(poller.detection()).toEqual({ mode: 'poll', pollMs: 10, reason: 'notifications-missed' })
    expect(warnings).toHaveLength(1)
    expect(warnings[0]!.message).toContain('polling every 10 ms')
    expect(warnings[0]!.fields).toMatchObject({ reason: 'notifications-missed' })
    poller.stop()
    expect(poller.detection().mode).toBe('off')
  })

  it('polls, and says why, when there is no file at the path to watch', async () => {
    const db = database()
    const poller = new ChangePoller(db.reader, db.statements, 10, join(db.dir, 'not-there.db'))
    let calls = 0
    poller.add(() => calls++)
    expect(poller.detection()).toEqual({ mode: 'poll', pollMs: 10, reason: 'no-file' })
    db.write()
    await waitFor(() => calls === 1)
    poller.stop()
  })
})
