import type { AddressInfo } from 'node:net'
import { connect, createServer, type Server, type Socket } from 'node:net'

/** A TCP proxy to `127.0.0.1:target` that can cut every link and refuse new ones, as a partition would. */
export interface TcpProxy {
  readonly port: number
  readonly url: string
  /** Destroys every open link and refuses new ones until `heal()`. */
  cut(): void
  /** Keeps links open but drops every byte, as a dead route would: only keep-alive can notice. */
  blackhole(): void
  heal(): void
  /** Bytes forwarded so far, both ways. */
  readonly bytes: number
  /** The bytes forwarded so far, both ways (what an eavesdropper on the LAN records): with `record` only. */
  recorded(): Buffer
  /** TLS records forwarded so far, to the target (`up`) and back (`down`), read from the records' headers. */
  tlsRecords(): { up: number; down: number }
  close(): Promise<void>
}

export async function startProxy(target: number, options: { record?: boolean } = {}): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  const chunks: Buffer[] = []
  let cut = false
  let dropping = false
  let bytes = 0
  const records = { up: new TlsRecordCounter(), down: new TlsRecordCounter() }
  const server: Server = createServer((client) => {
    if (cut) {
      client.destroy()
      return
    }
    const upstream = connect(target, '127.0.0.1')
    for (const [from, to, counter] of [
      [client, upstream, records.up],
      [upstream, client, records.down],
    ] as const) {
      sockets.add(from)
      from.on('close', () => sockets.delete(from))
      from.on('error', () => from.destroy())
      from.on('data', (d: Buffer) => {
        if (dropping) return
        bytes += d.length
        if (options.record) chunks.push(Buffer.from(d))
        counter.take(d)
        to.write(d)
      })
    }
    // A dead route carries no FIN or RST either.
    client.on('close', () => dropping || upstream.destroy())
    upstream.on('close', () => dropping || client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    get bytes() {
      return bytes
    },
    recorded: () => Buffer.concat(chunks),
    tlsRecords: () => ({ up: records.up.count, down: records.down.count }),
    cut() {
      cut = true
      for (const s of sockets) s.destroy()
    },
    blackhole() {
      dropping = true
    },
    heal() {
      cut = false
      // Links that lived through a dead route are out of step: drop them.
      if (dropping) for (const s of sockets) s.destroy()
      dropping = false
    },
    close() {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

/** Counts the TLS records of one direction of a stream: a 5-byte header (type, version, length), then the body. */
class TlsRecordCounter {
  count = 0
  private header = Buffer.alloc(0)
  private body = 0

  take(d: Buffer): void {
    let at = 0
    while (at < d.length) {
      if (this.body > 0) {
        const n = Math.min(this.body, d.length - at)
        this.body -= n
        at += n
        continue
      }
      const n = Math.min(5 - this.header.length, d.length - at)
      this.header = Buffer.concat([this.header, d.subarray(at, at + n)])
      at += n
      if (this.header.length === 5) {
        this.count++
        this.body = this.header.readUInt16BE(3)
        this.header = Buffer.alloc(0)
      }
    }
  }
}
