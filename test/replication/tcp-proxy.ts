import type { AddressInfo } from 'node:net'
import { connect, createServer, type Server, type Socket } from 'node:net'

/** A TCP proxy to `127.0.0.1:target` that can cut every link and refuse new ones, as a partition would. */
export interface TcpProxy {
  readonly port: number
  readonly url: string
  /** Destroys every open link and refuses new ones until `heal()`. */
  cut(): void
  heal(): void
  /** Bytes forwarded so far, both ways. */
  readonly bytes: number
  close(): Promise<void>
}

export async function startProxy(target: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  let cut = false
  let bytes = 0
  const server: Server = createServer((client) => {
    if (cut) {
      client.destroy()
      return
    }
    const upstream = connect(target, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => s.destroy())
      s.on('data', (d: Buffer) => {
        bytes += d.length
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    get bytes() {
      return bytes
    },
    cut() {
      cut = true
      for (const s of sockets) s.destroy()
    },
    heal() {
      cut = false
    },
    close() {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}
