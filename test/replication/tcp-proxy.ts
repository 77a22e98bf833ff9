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
  close(): Promise<void>
}

export async function startProxy(target: number, options: { record?: boolean } = {}): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  const chunks: Buffer[] = []
  let cut = false
  let dropping = false
  let bytes = 0
  const server: Server = createServer((client) => {
    if (cut) {
      client.destroy()
      return
    }
    const upstream = connect(target, '127.0.0.1')
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from)
      from.on('close', () => sockets.delete(from))
      from.on('error', () => from.destroy())
      from.on('data', (d: Buffer) => {
        if (dropping) return
        bytes += d.length
        if (options.record) chunks.push(Buffer.from(d))
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
