// What a peer's status warns of: among others, the way the app's writes are
// found (at once through file notifications, or by polling, and why).
import { describe, expect, it } from 'vitest'
import type { SyncMetrics } from '../../src/bridge/metrics.js'
import type { ResolvedConfig } from '../../src/config/load-config.js'
import { buildSnapshot } from '../../src/config/peer-snapshot.js'
import { describeChangeDetection, snapshotWarnings } from '../../src/config/status-snapshot.js'
import type { ChangeDetection } from '../../src/index.js'

const warningsFor = (changeDetection: ChangeDetection) => snapshotWarnings({ peers: [], changeDetection })

describe('the status of change detection', () => {
  it('warns of nothing while the watch works, or when polling was asked for', () => {
    expect(warningsFor({ mode: 'watch', pollMs: 1000 })).toEqual([])
    expect(warningsFor({ mode: 'poll', pollMs: 25, reason: 'disabled' })).toEqual([])
    expect(warningsFor({ mode: 'off', pollMs: 25 })).toEqual([])
    expect(describeChangeDetection({ mode: 'watch', pollMs: 1000 })).toBe(
      'found at once through file notifications (polled every 1000 ms as a safety net)',
    )
    expect(describeChangeDetection({ mode: 'poll', pollMs: 25, reason: 'disabled' })).toBe(
      'polled every 25 ms (watchDatabase: false)',
    )
  })

  it('warns when the watch was lost, with what to do about a system out of inotify watches', () => {
    const [noWatches] = warningsFor({ mode: 'poll', pollMs: 25, reason: 'watch-unavailable', error: 'ENOSPC' })
    expect(noWatches).toContain('polled every 25 ms')
    expect(noWatches).toContain('raise fs.inotify.max_user_watches')
    expect(noWatches).toContain('each waits up to 25 ms before it is sent')
    const [noInstances] = warningsFor({ mode: 'poll', pollMs: 25, reason: 'watch-unavailable', error: 'EMFILE' })
    expect(noInstances).toContain('raise fs.inotify.max_user_instances')
    const [other] = warningsFor({ mode: 'poll', pollMs: 25, reason: 'watch-unavailable', error: 'EACCES' })
    expect(other).toContain('cannot be watched (EACCES)')
    const [missed] = warningsFor({ mode: 'poll', pollMs: 25, reason: 'notifications-missed' })
    expect(missed).toContain('no file notification announced')
    const [noFile] = warningsFor({ mode: 'poll', pollMs: 25, reason: 'no-file' })
    expect(noFile).toContain('no database file to watch')
  })
})

describe("the snapshot's own warnings", () => {
  it('are those status and doctor print: long transactions and drift included', () => {
    const metrics = {
      applied: 3,
      pushed: 0,
      rejected: 0,
      errors: 0,
      busyRetries: 0,
      queueDepth: 0,
      lagMs: 0,
      localLagMs: 0,
      longTransactions: { count: 2, longestMs: 1500 },
      verify: { runs: 1, lastAt: 1, drifted: 4 },
    } as unknown as SyncMetrics
    const snapshot = buildSnapshot({
      config: { database: 'app.db', meshId: 'm' } as unknown as ResolvedConfig,
      meshDir: '/tmp/mesh',
      siteId: 'site',
      startedAt: new Date(0).toISOString(),
      now: 1,
      phase: 'live',
      listenPort: undefined,
      peers: [],
      counts: { collections: {}, tables: {}, kept: { parked: 0, refused: 0 }, conflicts: 0 },
      metrics,
      rates: { apply: 0, push: 0 },
      progress: undefined,
      lastError: undefined,
      changeDetection: { mode: 'poll', pollMs: 25, reason: 'notifications-missed' },
    })
    expect(snapshot.warnings).toEqual(snapshotWarnings(snapshot))
    expect(snapshot.warnings).toHaveLength(3)
    expect(snapshot.warnings!.join('\n')).toMatch(/2 transactions held the database's write lock/)
    expect(snapshot.warnings!.join('\n')).toMatch(/4 documents were found out of step/)
    expect(snapshot.warnings!.join('\n')).toMatch(/polled every 25 ms/)
  })
})
