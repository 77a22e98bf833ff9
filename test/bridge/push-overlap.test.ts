import { afterEach, expect, it } from 'vitest'
import { counter, counterAdapter } from './helpers/counter-model.js'
import { openNode, rows, type TestNode } from './helpers/node.js'
import { remoteSite } from './helpers/remote.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const closers: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
  dirs.cleanup()
})

/** The stored mesh cursor of the counters collection. */
function storedCursor(n: TestNode): string | null {
  const value = n.db
    .prepare("SELECT value FROM _meshmirror_checkpoints WHERE key LIKE 'cursor:counters:%'")
    .pluck()
    .get() as string | undefined

  return value ?? null
}

/** Whether a peer starting from its stored cursor would read the document's latest change again. */
async function wouldReadAgain(n: TestNode, id: string): Promise<boolean> {
  const page = await n.mesh.changesSince(storedCursor(n), { collection: 'counters' }, { limit: 10_000 })
  return page.changed.some((d) => d._id === id)
}

it('does not store a cursor past a document set aside during a local push of it until it has been read again', async () => {
  // The bridge's pushes wait at this gate while it is closed.
  let open: () => void = () => undefined
  let gate: Promise<void> | undefined
  let reached: () => void = () => undefined
  const b = (await openNode(dirs.make('b'), {
    beforeMeshTransaction: () => {
      reached()
      return gate ?? Promise.resolve()
    },
  })) as TestNode
  closers.push(() => b.close())
  const site = await remoteSite('builtin', b.mesh, dirs.make('site'))
  closers.push(() => site.close())
  b.db
    .prepare(
      'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)',
    )
    .run(counter(0))
  await b.sync.flush()

  // The app edits the row; its push is held underway.
  gate = new Promise((resolve) => {
    open = resolve
  })
  closers.push(async () => open())
  const underway = new Promise<void>((resolve) => {
    reached = resolve
  })
  b.db.prepare("UPDATE counters SET cur_rcpt_no = 5 WHERE id = 'c000000'").run()
  await underway
  // Meanwhile another site changes the same document, and adds another.
  await site.upsert('counters', [
    counterAdapter.toDocument(counter(0, { invc_no: 9 })),
    counterAdapter.toDocument(counter(1)),
  ])
  await waitFor(() => b.sync.metrics().deferred > 0, { message: 'the change read during the push set aside' })
  await waitFor(() => rows(b).length === 2, { message: 'the other document applied' })
  // Its batch committed; the stored cursor still makes a restart read the set-aside change.
  expect(await wouldReadAgain(b, 'c000000')).toBe(true)

  // The push ends: the document is read again and applied, merged; the cursor moves on.
  open()
  gate = undefined
  await waitFor(() => rows(b)[0]?.invc_no === 9 && rows(b)[0]?.cur_rcpt_no === 5, { message: 'merged row' })
  await waitFor(async () => !(await wouldReadAgain(b, 'c000001')), {
    message: 'the cursor stored past the second document',
  })
})
