import { newNonce, proof } from '../../src/replication/auth.js'
import { decodeMessage, encodeMessage, type Message, PROTOCOL_VERSION } from '../../src/replication/protocol.js'
import type { Connection, Transport } from '../../src/replication/transport.js'

/**
 * A hand-driven peer: speaks the handshake itself, then lets a test send
 * any frame, well-formed or not, and see what comes back.
 */
export interface RawPeer {
  readonly connection: Connection
  /** Every message received, decoded. */
  readonly received: Message[]
  /** Resolves with the close reason. */
  readonly closed: Promise<string>
  sendRaw(frame: string): void
  send(m: Message): void
  /** Resolves with the first received message (past or future) matching `pred`. */
  next(pred: (m: Message) => boolean): Promise<Message>
}

export interface RawPeerOptions {
  site: string
  meshId: string
  secret: string
  version?: number
  /** Stop after sending hello (do not answer the challenge). */
  helloOnly?: boolean
}

export async function rawPeer(transport: Transport, url: string, o: RawPeerOptions): Promise<RawPeer> {
  const connection = await transport.dial(url)
  const received: Message[] = []
  const waiters = new Set<{ pred: (m: Message) => boolean; resolve: (m: Message) => void }>()
  let markClosed!: (reason: string) => void
  const closed = new Promise<string>((resolve) => {
    markClosed = resolve
  })
  const peer: RawPeer = {
    connection,
    received,
    closed,
    sendRaw: (frame) => connection.send(frame),
    send: (m) => connection.send(encodeMessage(m)),
    next(pred) {
      const found = received.find(pred)
      if (found) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const w = { pred, resolve }
        waiters.add(w)
        void closed.then((reason) => {
          if (waiters.delete(w)) reject(new Error(`closed before the expected message: ${reason}`))
        })
      })
    },
  }
  // Hello first: attaching the listener may deliver frames that arrived already.
  peer.send({ t: 'hello', v: o.version ?? PROTOCOL_VERSION, mesh: o.meshId, site: o.site, nonce: newNonce() })
  connection.onClose((reason) => markClosed(reason))
  connection.onMessage((frame) => {
    const m = decodeMessage(frame)
    if (typeof m === 'string') return
    received.push(m)
    if (m.t === 'hello' && !o.helloOnly) peer.send({ t: 'auth', proof: proof(o.secret, o.meshId, m.nonce, o.site) })
    for (const w of [...waiters]) {
      if (w.pred(m)) {
        waiters.delete(w)
        w.resolve(m)
      }
    }
  })
  return peer
}

/** Completes the handshake: waits for the other side's `sync` and announces an empty replica. */
export async function syncEmpty(peer: RawPeer): Promise<void> {
  await peer.next((m) => m.t === 'sync')
  peer.send({ t: 'sync', vv: {}, after: 0, window: 4, maxFrame: 16 * 1024 * 1024 })
}
