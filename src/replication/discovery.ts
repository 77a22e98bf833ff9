import { Bonjour, type Service } from 'bonjour-service'
import type { Logger } from '../logger.js'

/** LAN discovery of peers of the same mesh over mDNS/DNS-SD (`_meshmirror._tcp`). */
export interface Discovery {
  stop(): Promise<void>
}

export interface DiscoveryOptions {
  meshId: string
  site: string
  /** Our listen port, to advertise; without one we only browse. */
  port: number | undefined
  /** A peer of this mesh was found: dial it. */
  onPeer(url: string): void
  logger: Logger
}

const SERVICE_TYPE = 'meshmirror'

export function startDiscovery(o: DiscoveryOptions): Discovery {
  const bonjour = new Bonjour({}, (error: Error) => o.logger.warn('mDNS error', { error: error.message }))
  if (o.port !== undefined) {
    bonjour.publish({
      name: `meshmirror-${o.site}`,
      type: SERVICE_TYPE,
      port: o.port,
      txt: { mesh: o.meshId, site: o.site },
    })
  }
  const browser = bonjour.find({ type: SERVICE_TYPE }, (service: Service) => {
    const txt = (service.txt ?? {}) as Record<string, string>
    if (txt.mesh !== o.meshId || !txt.site || txt.site === o.site) return
    // One side dials: the one with the smaller site id. The other waits for it.
    if (o.site > txt.site) return
    const host = service.addresses?.find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a)) ?? service.host
    o.logger.info('found a peer on the LAN', { site: txt.site, host, port: service.port })
    o.onPeer(`ws://${host}:${service.port}`)
  })
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        browser.stop()
        bonjour.unpublishAll(() => bonjour.destroy(() => resolve()))
      }),
  }
}
