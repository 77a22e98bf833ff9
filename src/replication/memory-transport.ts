import type { Connection, Listener, Transport } from './transport.js'

/**
 * Knobs of an in-process network, for tests and simulations. The faults go
 * beyond what the `Connection` contract promises (ordered, exactly once):
 * they check that the protocol detects a misbehaving carrier and recovers.
 */
export interface MemoryNetworkOptions {
  /** Delay of each frame, in ms. Default: none. */
  latencyMs?: () => number
  /** True: this frame leaves the connection's order and may overtake earlier ones. Default: never. */
  reorder?: () => boolean
  /** True: this frame is delivered twice. Default: never. */
  duplicate?: () => boolean
}

/**
 * An in-process network: `transport()` gives each peer a carrier whose
 * `listen` registers `mem://<host>:<port>` and whose `dial` connects to it.
 * `cut()` drops every open connection, as a partition would.
 */
export class MemoryNetwork {
  private readonly listeners = new Map<string, (c: Connection) => void>()
  private readonly open = new Set<MemoryConnection>()
  private nextPort = 1

  constructor(private readonly options: MemoryNetworkOptions = {}) {}

  transport(): Transport {
    return {
      listen: async ({ host, port }, onConnection): Promise<Listener> => {
        const p = port === 0 ? this.nextPort++ : port
        const key = `mem://${host}:${p}`
        this.listeners.set(key, onConnection)
        return { host, port: p, close: async () => void this.listeners.delete(key) }
      },
      dial: async (url) => {
        const accept = this.listeners.get(url)
        if (!accept) throw new Error(`nothing listens on ${url}`)
        const a = new MemoryConnection(url, this.options)
        const b = new MemoryConnection(`inbound from ${url}`, this.options)
        a.peer = b
        b.peer = a
        this.open.add(a)
        this.open.add(b)
        a.onClose(() => this.open.delete(a))
        b.onClose(() => this.open.delete(b))
        accept(b)
        return a
      },
    }
  }

  /** Drops every connection. */
  cut(reason = 'network cut'): void {
    for (const c of [...this.open]) c.close(reason)
  }

  get connections(): number {
    return this.open.size
  }
}

class MemoryConnection implements Connection {
  peer: MemoryConnection | undefined
  private listener: ((frame: string) => void) | undefined
  private readonly early: string[] = []
  private readonly closeListeners: ((reason: string, error?: Error) => void)[] = []
  private closed = false
  private lastDelivery = 0

  constructor(
    readonly remote: string,
    private readonly faults: MemoryNetworkOptions,
  ) {}

  readonly buffered = 0

  send(frame: string): void {
    const peer = this.peer
    if (this.closed || !peer) return
    this.schedule(peer, frame)
    if (this.faults.duplicate?.()) this.schedule(peer, frame)
  }

  private schedule(peer: MemoryConnection, frame: string): void {
    const { latencyMs, reorder } = this.faults
    if (!latencyMs && !reorder) {
      queueMicrotask(() => peer.deliver(frame))
      return
    }
    const now = Date.now()
    const own = now + (latencyMs?.() ?? 0)
    if (reorder?.()) {
      // Out of line: one more ms than its own latency, so it can land after later frames.
      setTimeout(() => peer.deliver(frame), own + 1 - now)
      return
    }
    // In line: never deliver before the previous in-line frame.
    const at = Math.max(own, this.lastDelivery)
    this.lastDelivery = at
    setTimeout(() => peer.deliver(frame), at - now)
  }

  private deliver(frame: string): void {
    if (this.closed) return
    if (this.listener) this.listener(frame)
    else this.early.push(frame)
  }

  onMessage(listener: (frame: string) => void): void {
    this.listener = listener
    for (const f of this.early.splice(0)) listener(f)
  }

  onClose(listener: (reason: string, error?: Error) => void): void {
    this.closeListeners.push(listener)
  }

  close(reason: string): void {
    if (this.closed) return
    this.closed = true
    for (const l of this.closeListeners) l(reason)
    this.peer?.close(reason)
  }
}
