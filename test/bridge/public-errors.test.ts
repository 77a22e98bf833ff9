import { createServer } from 'node:net'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  AbortError,
  ClosedError,
  createSyncCoordinator,
  createSyncRegistry,
  ErrorCode,
  MeshmirrorError,
  openMesh,
  openSqliteRepository,
  wsTransport,
} from '../../src/index.js'
import { counterAdapter, counterModel } from './helpers/counter-model.js'
import { tempDirs } from './helpers/wait.js'

// Every failure of the public API is a MeshmirrorError with a stable code: an
// aborted signal included (a DOMException from signal.throwIfAborted() is not).

const dirs = tempDirs()
const cleanup: (() => unknown)[] = []

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  dirs.cleanup()
})

async function open() {
  const dir = dirs.make('errors')
  const mesh = await openMesh({ dir: join(dir, 'mesh') })
  const repository = await openSqliteRepository({
    file: join(dir, 'app.db'),
    models: [{ ...counterModel, columns: { id: 'text', branch_id: 'integer', cur_rcpt_no: 'integer' } }],
  })
  cleanup.push(
    () => mesh.close(),
    () => repository.close(),
  )
  return { mesh, repository }
}

async function failure(promise: Promise<unknown>): Promise<MeshmirrorError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(MeshmirrorError)
  return error as MeshmirrorError
}

describe('public errors', () => {
  it('coordinator.start with an aborted signal rejects with ABORTED and keeps the reason as cause', async () => {
    const { mesh, repository } = await open()
    const coordinator = createSyncCoordinator({ mesh, repository, adapters: [counterAdapter] })
    cleanup.push(() => coordinator.close())
    const controller = new AbortController()
    controller.abort('the app is quitting')
    const error = await failure(coordinator.start({ signal: controller.signal }))
    expect(error).toBeInstanceOf(AbortError)
    expect(error.code).toBe(ErrorCode.ABORTED)
    expect(error.cause).toBe('the app is quitting')
    expect(coordinator.state).toBe('idle')
  })

  it('registry.start with an aborted signal rejects with ABORTED', async () => {
    const { mesh, repository } = await open()
    const registry = createSyncRegistry({ mesh, repository, adapters: [counterAdapter] })
    cleanup.push(() => registry.close())
    const controller = new AbortController()
    controller.abort()
    const error = await failure(registry.start({ signal: controller.signal }))
    expect(error.code).toBe(ErrorCode.ABORTED)
    // Retryable: the same registry starts once the signal no longer stops it.
    await registry.start()
    expect(registry.coordinator.state).toBe('live')
  })

  it('a closed coordinator refuses every operation, and a closed registry start, with STORE_CLOSED', async () => {
    const { mesh, repository } = await open()
    const coordinator = createSyncCoordinator({ mesh, repository, adapters: [counterAdapter] })
    await coordinator.close()
    const closed = await failure(coordinator.start())
    expect(closed).toBeInstanceOf(ClosedError)
    expect(closed.code).toBe(ErrorCode.STORE_CLOSED)
    for (const call of [
      () => coordinator.setContext({ branchId: 2 }),
      () => coordinator.flush(),
      () => coordinator.catchUp(),
      () => coordinator.seed(),
      () => coordinator.restore('counters'),
      () => coordinator.notifyLocalUpsert('counters', { id: 'c1' }),
      () => coordinator.notifyLocalDelete('counters', 'c1'),
    ]) {
      expect((await failure(call())).code).toBe(ErrorCode.STORE_CLOSED)
    }
    const registry = createSyncRegistry({ mesh, repository, adapters: [counterAdapter] })
    await registry.close()
    expect((await failure(registry.start())).code).toBe(ErrorCode.STORE_CLOSED)
  })

  it('an aborted dial of the WebSocket transport rejects with ABORTED', async () => {
    // A server that accepts TCP but never answers the WebSocket handshake keeps the dial pending.
    const server = createServer(() => {})
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanup.push(() => new Promise((resolve) => server.close(resolve)))
    const { port } = server.address() as { port: number }
    const controller = new AbortController()
    const dialing = wsTransport().dial(`ws://127.0.0.1:${port}`, controller.signal)
    controller.abort('no longer needed')
    const error = await failure(dialing)
    expect(error.code).toBe(ErrorCode.ABORTED)
    expect(error.cause).toBe('no longer needed')
  })
})
