import type { DashboardLink } from './source.js'

/** A device this peer has been linked to, live or gone. */
export interface DeviceView extends DashboardLink {
  /** Transport of the link: `ws`, `wss`, or `ditto`. */
  transport: string
  /** False once it no longer appears among the links. */
  present: boolean
  firstSeen: number
  lastSeen: number
}

/** Devices kept after they left. */
const GONE_KEPT = 50

/** The devices of the mesh over time: the snapshot lists the present ones; this remembers those that left. */
export class DeviceTracker {
  private readonly devices = new Map<string, DeviceView>()

  update(links: readonly DashboardLink[], now: number): void {
    const seen = new Set<string>()
    // A closed link is a device that left, even while its session is still listed.
    for (const link of links.filter((l) => l.state !== 'closed')) {
      const key = link.site ?? link.remote
      seen.add(key)
      const before = this.devices.get(key)
      this.devices.set(key, {
        ...link,
        transport: transportOf(link),
        present: true,
        firstSeen: before?.firstSeen ?? now,
        lastSeen: now,
      })
    }
    for (const [key, d] of this.devices) if (!seen.has(key) && d.present) d.present = false
    const gone = [...this.devices.values()].filter((d) => !d.present).sort((a, b) => b.lastSeen - a.lastSeen)
    for (const d of gone.slice(GONE_KEPT)) this.devices.delete(d.site ?? d.remote)
  }

  list(): DeviceView[] {
    return [...this.devices.values()].sort((a, b) => Number(b.present) - Number(a.present) || b.lastSeen - a.lastSeen)
  }
}

function transportOf(link: DashboardLink): string {
  if (link.direction === 'ditto') return 'ditto'
  if (link.remote.startsWith('wss:')) return 'wss'
  return 'ws'
}
