// What asking the hub for a watch's consumer info costs: `npx tsx bench/hub-consumer-info.ts [--connections 50]
// [--keys 1000,10000,40000]`.
//
// One local nats-server and a KV bucket as the hub link makes it (one revision per key), 50 watches over 10
// key prefixes (as 10 shops of 5 tills), on `--connections` connections. For each bucket size: one consumer
// info at a time (the server's time for each), then all 50 at once while another connection writes one key
// a millisecond, and the longest of those writes: how long the consumer infos held up the stream.

import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ConsumerInfo, jetstream } from '@nats-io/jetstream'
import { Kvm, type KvWatchEntry } from '@nats-io/kv'
import { connect, type QueuedIterator } from '@nats-io/transport-node'
import { startDemoHub } from '../src/demo/hub-server.js'

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const CONNECTIONS = Number(arg('connections', '50'))
const SIZES = arg('keys', '1000,10000,40000').split(',').map(Number)
const WATCHES = 50

const consumerOf = (iter: QueuedIterator<KvWatchEntry>) =>
  (iter as unknown as { _data: { info(cached: boolean): Promise<ConsumerInfo> } })._data

const dir = mkdtempSync(join(tmpdir(), 'mm-consumer-info-'))
const hub = await startDemoHub(dir)
try {
  const writer = await connect({ servers: hub.url })
  const kv = await new Kvm(jetstream(writer)).create('meshmirror', { history: 1 })
  const conns = await Promise.all(Array.from({ length: CONNECTIONS }, () => connect({ servers: hub.url })))
  const watches: QueuedIterator<KvWatchEntry>[] = []
  for (let i = 0; i < WATCHES; i++) {
    const bucket = await new Kvm(jetstream(conns[i % CONNECTIONS]!)).open('meshmirror')
    const iter = await bucket.watch({ key: `bench.shop-${i % 10}.>` })
    void (async () => {
      for await (const _ of iter);
    })()
    watches.push(iter)
  }
  let n = 0
  for (const size of SIZES) {
    while (n < size) {
      const batch: Promise<number>[] = []
      for (let j = 0; j < 500 && n < size; j++, n++) batch.push(kv.put(`bench.shop-${n % 10}.c._.k${n}`, '{"x":1}'))
      await Promise.all(batch)
    }
    await new Promise((r) => setTimeout(r, 500))
    const one: number[] = []
    for (const w of watches) {
      const t = performance.now()
      await consumerOf(w).info(false)
      one.push(performance.now() - t)
    }
    one.sort((a, b) => a - b)
    const puts: number[] = []
    let writing = true
    const writes = (async () => {
      for (let i = 0; writing; i++) {
        const t = performance.now()
        await kv.put(`bench.shop-0.w._.k${i}`, '{}')
        puts.push(performance.now() - t)
        await new Promise((r) => setTimeout(r, 1))
      }
    })()
    await new Promise((r) => setTimeout(r, 200))
    const t0 = performance.now()
    await Promise.all(watches.map((w) => consumerOf(w).info(false)))
    const all = performance.now() - t0
    await new Promise((r) => setTimeout(r, 200))
    writing = false
    await writes
    console.log(
      `${size} keys, ${CONNECTIONS} connections, load ${loadavg()[0]!.toFixed(2)}: one consumer info p50 ${one[Math.floor(one.length / 2)]!.toFixed(2)} ms, max ${one[one.length - 1]!.toFixed(2)} ms; ${WATCHES} at once ${all.toFixed(0)} ms; a write meanwhile took up to ${Math.max(...puts).toFixed(1)} ms (${puts.length} writes)`,
    )
  }
  for (const w of watches) w.stop()
  for (const c of conns) await c.close()
  await writer.close()
} finally {
  await hub.stop()
  rmSync(dir, { recursive: true, force: true })
}
