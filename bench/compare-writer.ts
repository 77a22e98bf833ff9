// A competing writer: another process that keeps taking the app database's
// write lock, holding each write transaction for <hold> ms, then pausing
// <gap> ms. Prints `{ ready: true }` after its first commit and
// `{ commits }` every 10 commits. Runs until killed.
// Usage: compare-writer.ts <db file> <hold ms> <gap ms>
import Database from 'better-sqlite3'

const [file, holdArg, gapArg] = process.argv.slice(2) as [string, string, string]
const hold = Number(holdArg)
const gap = Number(gapArg)
const db = new Database(file)
// The competitor waits for its own turn; what is measured is how the other writer copes.
db.pragma('busy_timeout = 30000')
db.exec('CREATE TABLE IF NOT EXISTS competitor (n INTEGER NOT NULL, at INTEGER NOT NULL)')
const insert = db.prepare('INSERT INTO competitor (n, at) VALUES (?, ?)')
const sleeper = new Int32Array(new SharedArrayBuffer(4))
let commits = 0
for (;;) {
  db.exec('BEGIN IMMEDIATE')
  insert.run(commits, Date.now())
  // Holding the lock without yielding, like a long transaction of the app.
  Atomics.wait(sleeper, 0, 0, hold)
  db.exec('COMMIT')
  commits++
  if (commits === 1) process.stdout.write(`${JSON.stringify({ ready: true })}\n`)
  if (commits % 10 === 0) process.stdout.write(`${JSON.stringify({ commits })}\n`)
  await new Promise((r) => setTimeout(r, gap))
}
