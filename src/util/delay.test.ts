import { describe, expect, it } from 'vitest'
import { delay } from './delay.js'

describe('delay', () => {
  it('resolves after the timer when no signal fires', async () => {
    const controller = new AbortController()
    await expect(delay(5, controller.signal, undefined)).resolves.toBeUndefined()
  })

  it('rejects with ABORTED when any of its signals fires, or already has', async () => {
    const first = new AbortController()
    const second = new AbortController()
    const waiting = delay(60_000, first.signal, second.signal)
    second.abort(new Error('stop'))
    await expect(waiting).rejects.toMatchObject({ code: 'ABORTED' })
    await expect(delay(60_000, undefined, second.signal)).rejects.toMatchObject({ code: 'ABORTED' })
  })
})
