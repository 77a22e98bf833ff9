import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'

/** Which way bytes go through a link: from the dialing peer to the dialed one, or back. */
export type Direction = 'forward' | 'back'

interface Pair {
  client: Socket
  upstream: Socket
  /** Bytes were dropped in the middle of the stream: it cannot be healed, only closed. */
  tainted: boolean
  /** When the last queued chunk leaves, per direction (ms, performance.now()). */
  release: Record<Direction, number>
}

/**
 * A TCP link between two peers (the dialing peer connects to the proxy, the
 * proxy to the dialed peer) whose faults the harness switches: cut (every
 * connection closed, new ones refused), one direction blackholed (bytes
 * dropped, connections left open, as a dead route one way), latency and a
 * bandwidth limit, and dropped connections. Faults nest: a link is cut while
 * any partition cutting it lasts.
 */
export class LinkProxy {
  private readonly pairs = new Set<Pair>()
  private server: Server | undefined
  private cuts = 0
  private readonly blocked: Record<Direction, number> = { forward: 0, back: 0 }
  private slow: { latencyMs: number; bytesPerMs: number } | undefined
  port = 0
  /** Bytes forwarded, and dropped by a blackhole. */
  readonly bytes = { forwarded: 0, dropped: 0 }
  connections = 0

  constructor(private readonly target: number) {}

  async start(): Promise<void> {
    this.server = createServer((client) => this.accept(client))
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as AddressInfo).port
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`
  }

  private accept(client: Socket): void {
    if (this.cuts > 0) {
      client.destroy()
      return
    }
    this.connections++
    const upstream = connect(this.target, '127.0.0.1')
    const pair: Pair = { client, upstream, tainted: false, release: { forward: 0, back: 0 } }
    this.pairs.add(pair)
    const close = () => {
      this.pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', close)
    upstream.on('error', close)
    client.on('close', close)
    upstream.on('close', close)
    client.on('data', (d: Buffer) => this.forward(pair, 'forward', d))
    upstream.on('data', (d: Buffer) => this.forward(pair, 'back', d))
  }

  private forward(pair: Pair, direction: Direction, chunk: Buffer): void {
    if (this.blocked[direction] > 0) {
      pair.tainted = true
      this.bytes.dropped += chunk.length
      return
    }
    const to = direction === 'forward' ? pair.upstream : pair.client
    const now = performance.now()
    const slow = this.slow
    // Chunks leave in order: none before the one queued ahead of it.
    const at =
      Math.max(pair.release[direction], now + (slow?.latencyMs ?? 0)) + (slow ? chunk.length / slow.bytesPerMs : 0)
    pair.release[direction] = at
    this.bytes.forwarded += chunk.length
    if (at <= now) to.write(chunk)
    else setTimeout(() => to.destroyed || to.write(chunk), at - now)
  }

  /** Closes every connection and refuses new ones until the returned function is called. */
  cut(): () => void {
    this.cuts++
    this.dropConnections()
    return once(() => {
      this.cuts--
    })
  }

  /** Drops every byte going one way until the returned function is called; then the damaged connections are closed. */
  blackhole(direction: Direction): () => void {
    this.blocked[direction]++
    return once(() => {
      this.blocked[direction]--
      for (const pair of this.pairs) {
        if (pair.tainted) {
          pair.client.destroy()
          pair.upstream.destroy()
        }
      }
    })
  }

  /** Adds latency and a bandwidth limit (both ways) until the returned function is called. */
  throttle(latencyMs: number, bytesPerSecond: number): () => void {
    const setting = { latencyMs, bytesPerMs: bytesPerSecond / 1000 }
    this.slow = setting
    return once(() => {
      if (this.slow === setting) this.slow = undefined
    })
  }

  /** Closes the open connections (as a reset route would); new ones are accepted. */
  dropConnections(): number {
    const n = this.pairs.size
    for (const pair of [...this.pairs]) {
      pair.client.destroy()
      pair.upstream.destroy()
    }
    return n
  }

  /** Ends every fault. */
  heal(): void {
    this.cuts = 0
    const wasBlocked = this.blocked.forward > 0 || this.blocked.back > 0
    this.blocked.forward = 0
    this.blocked.back = 0
    this.slow = undefined
    if (wasBlocked) for (const pair of this.pairs) if (pair.tainted) pair.client.destroy()
  }

  async close(): Promise<void> {
    this.dropConnections()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }
}

function once(fn: () => void): () => void {
  let done = false
  return () => {
    if (done) return
    done = true
    fn()
  }
}
