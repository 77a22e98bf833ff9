import { type AddressInfo, connect, createServer } from 'node:net'

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for a process started
 * next that cannot be told to pick one itself and report it (`nats-server`).
 * Another process may take it meanwhile; where a listener of ours can, it
 * listens on port 0 instead.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.unref()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/** Whether something accepts connections on 127.0.0.1:`port` (a started process is ready). */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}
