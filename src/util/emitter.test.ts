import { describe, expect, it } from 'vitest'
import type { Logger } from '../logger.js'
import { Emitter } from './emitter.js'

type Events = { tick: number; other: string }

function recordingLogger(): Logger & { errors: { message: string; fields?: Record<string, unknown> }[] } {
  const errors: { message: string; fields?: Record<string, unknown> }[] = []
  const noop = () => {}
  return { errors, debug: noop, info: noop, warn: noop, error: (message, fields) => errors.push({ message, fields }) }
}

describe('Emitter', () => {
  it('calls listeners of the emitted event in order, until unsubscribed', () => {
    const events = new Emitter<Events>(recordingLogger())
    const seen: string[] = []
    const offA = events.on('tick', (n) => seen.push(`a${n}`))
    events.on('tick', (n) => seen.push(`b${n}`))
    events.on('other', (s) => seen.push(s))
    events.emit('tick', 1)
    offA()
    events.emit('tick', 2)
    expect(seen).toEqual(['a1', 'b1', 'b2'])
    expect(events.has('tick')).toBe(true)
    events.clear()
    expect(events.has('tick')).toBe(false)
  })

  it('logs a throwing listener, hands it to the owner, and still calls the others', () => {
    const logger = recordingLogger()
    const reported: [unknown, string][] = []
    const events = new Emitter<Events>(logger, (error, event) => reported.push([error, event]))
    const seen: number[] = []
    events.on('tick', () => {
      throw new Error('boom')
    })
    events.on('tick', (n) => seen.push(n))
    expect(() => events.emit('tick', 7)).not.toThrow()
    expect(seen).toEqual([7])
    expect(logger.errors).toEqual([
      { message: 'event listener failed', fields: { event: 'tick', error: 'Error: boom' } },
    ])
    expect(reported.map(([e, ev]) => [(e as Error).message, ev])).toEqual([['boom', 'tick']])
  })
})
