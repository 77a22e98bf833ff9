import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { type MeshStore, openMesh } from '../../src/index.js'
import { COUNTERS_DDL, type CounterRow, counter, counterAdapter } from './helpers/counter-model.js'
import { BACKENDS, openNode, rows, type TestNode } from './helpers/node.js'
import { type Fixture, runFixture, tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const cleanup: (() => unknown)[] = []

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  dirs.cleanup()
})

const N = 20_000

function start(dir: string, ...args: string[]): Fixture {
  const child = runFixture('bridge-node', [dir, ...args])
  cleanup.push(() => {
    if (child.child.exitCode === null) child.child.kill('SIGKILL')
    return child.exited
  })
  return child
}

async function kill(child: Fixture): Promise<void> {
  child.child.kill('SIGKILL')
  expect(await child.exited).toBe('SIGKILL')
}

/** The repository and the mesh hold the same documents. */
async function expectAgreement(node: TestNode<MeshStore>, expected: number): Promise<void> {
  const docs = await node.mesh.find({ collection: 'counters', orderBy: '_id' })
  const mirrored = (rows(node) as CounterRow[]).map((r) => counterAdapter.toDocument(r))
  expect(docs).toHaveLength(expected)
  expect(mirrored).toEqual(docs)
}

describe('SIGKILL', () => {
  it('after local changes are acknowledged, before a change held back meanwhile is applied: the next start applies it', async () => {
    const dir = dirs.make('b')
    const child = runFixture('held-then-killed', [dir, dirs.make('site')])
    cleanup.push(() => {
      if (child.child.exitCode === null) child.child.kill('SIGKILL')
      return child.exited
    })
    await child.line((l) => l === 'acked', 30_000)
    await kill(child)
    const b = await openNode(dir)
    cleanup.push(() => b.close())
    await waitFor(() => (rows(b) as CounterRow[])[0]?.invc_no === 42, {
      message: 'the change held back applied',
      timeout: 10_000,
    })
    await expectAgreement(b, 1)
  }, 60_000)

  it('during apply: after restart the repository and the mesh agree, and every row was written once', async () => {
    const src = await openMesh({ dir: join(dirs.make('src'), 'mesh') })
    cleanup.push(() => src.close())
    const docs = Array.from({ length: N }, (_, i) => counterAdapter.toDocument(counter(i)))
    for (let i = 0; i < N; i += 2000) await src.upsert('counters', docs.slice(i, i + 2000))
    const feed = join(dirs.make('feed'), 'changes.json')
    writeFileSync(feed, JSON.stringify((await src.changesFor({}, 0, N)).changes))

    const dir = dirs.make('b')
    const child = start(dir, 'feed', feed)
    await child.line((l) => l.startsWith('applied ') && Number(l.split(' ')[1]) >= 2000)
    await kill(child)
    expect(child.lines).not.toContain('fed')

    const b = await openNode(dir, { start: false })
    cleanup.push(() => b.close())
    const inMesh = await b.mesh.count({ collection: 'counters' })
    expect(inMesh).toBeLessThan(N)
    await b.registry.start()
    await expectAgreement(b, inMesh)
    // Each row was written exactly once across both runs; nothing was sent back.
    expect(b.writes()).toBe(inMesh)
    expect(b.meshWrites.changed).toBe(0)
    expect((await b.repo.pendingChangeCount(['counters'])).count).toBe(0)

    // The rest arrives and lands too.
    await b.mesh.applyRemote((await src.changesFor(await b.mesh.versionVector(), 0, N)).changes)
    await waitFor(() => b.writes() === N, { message: 'all rows', timeout: 30_000 })
    await b.sync.flush()
    await expectAgreement(b, N)
    expect(b.meshWrites.changed).toBe(0)
  }, 60_000)
})

describe.each(BACKENDS)('SIGKILL on the %s mesh', (backend) => {
  it('during outbox drain: after restart every row reaches the mesh exactly once', async () => {
    // Fewer rows on Ditto, whose writes are slower.
    const N = backend === 'ditto' ? 4000 : 20_000
    const dir = dirs.make('a')
    const child = start(dir, 'live', ...(backend === 'ditto' ? ['ditto'] : []))
    await child.line((l) => l === 'live')
    const app = new Database(join(dir, 'app.db'))
    cleanup.push(() => app.close())
    app.pragma('busy_timeout = 10000')
    app.exec(COUNTERS_DDL)
    const insert = app.prepare(
      'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)',
    )
    app.transaction(() => {
      for (let i = 0; i < N; i++) insert.run(counter(i))
    })()
    await child.line((l) => l.startsWith('pushed ') && Number(l.split(' ')[1]) >= N / 10)
    await kill(child)

    const a = await openNode(dir, { start: false, backend })
    cleanup.push(() => a.close())
    const pending = (await a.repo.pendingChangeCount(['counters'])).count
    expect(pending).toBeGreaterThan(0)
    const before = await a.mesh.count({ collection: 'counters' })
    // The builtin engine's change sequence (Ditto's store has none).
    const seqBefore = (await a.mesh.stats()).sequence ?? Number.NaN
    expect(before).toBeLessThan(N)
    const report = await a.registry.start()
    expect(report.drained).toBe(pending)
    await expectAgreement(a, N)
    // Only the documents the mesh lacked were written; re-sent ones changed nothing.
    expect(a.meshWrites.changed).toBe(N - before)
    if (backend === 'builtin') expect((await a.mesh.stats()).sequence).toBe(seqBefore + N - before)
    expect((await a.repo.pendingChangeCount(['counters'])).count).toBe(0)
  }, 60_000)
})
