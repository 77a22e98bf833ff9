// How a peer's status shows the way the app's writes are found: at once
// through file notifications, or by polling, and why.
import { describe, expect, it } from 'vitest'
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
