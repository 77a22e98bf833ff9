/** The network process: hosts the link proxies and switches their faults on request (see network.ts). */
import type { NetworkReply, NetworkRequest } from './network.js'
import { LinkProxy } from './proxy.js'

let links: (LinkProxy | undefined)[][] = []
/** Ends of the faults in force, by token. */
const ends = new Map<number, () => void>()

function reply(message: NetworkReply): void {
  process.send?.(message)
}

process.on('message', async (m: NetworkRequest) => {
  switch (m.op) {
    case 'open': {
      links = m.ports.map((_, a) => m.ports.map((port, b) => (a === b ? undefined : new LinkProxy(port))))
      for (const row of links) for (const link of row) await link?.start()
      reply({ token: m.token, ports: links.map((row) => row.map((l) => l?.port ?? 0)) })
      return
    }
    case 'cut':
      ends.set(m.token, links[m.a]![m.b]!.cut())
      return
    case 'blackhole':
      ends.set(m.token, links[m.a]![m.b]!.blackhole(m.direction))
      return
    case 'throttle':
      ends.set(m.token, links[m.a]![m.b]!.throttle(m.latencyMs, m.bytesPerSecond))
      return
    case 'end':
      ends.get(m.token)?.()
      ends.delete(m.token)
      return
    case 'drop':
      reply({ token: m.token, dropped: links[m.a]![m.b]!.dropConnections() })
      return
    case 'heal':
      ends.clear()
      for (const row of links) for (const link of row) link?.heal()
      reply({ token: m.token })
      return
  }
})

process.on('SIGTERM', async () => {
  for (const row of links) for (const link of row) await link?.close()
  process.exit(0)
})
// Gone with the harness, whatever way it ended.
process.on('disconnect', () => process.exit(0))
