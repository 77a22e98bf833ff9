import { describe, expect, it } from 'vitest'
import type { JsonObject } from '../mesh/document.js'
import { bytesToJson, fromTagged, intToJson, isTagged, keyFromText, keyText, realToJson } from './value-codec.js'

describe('value codec', () => {
  it('keeps integers plain while a JSON number holds them exactly, tagged beyond', () => {
    expect(intToJson(2n)).toBe(2)
    expect(intToJson(9007199254740991n)).toBe(9007199254740991)
    expect(intToJson(-9007199254740991n)).toBe(-9007199254740991)
    expect(intToJson(9007199254740993n)).toEqual({ $int: '9007199254740993' })
    expect(intToJson(-(2n ** 63n))).toEqual({ $int: '-9223372036854775808' })
    expect(fromTagged({ $int: '9223372036854775807' })).toBe(2n ** 63n - 1n)
  })

  it('round-trips bytes, zero bytes and empty included', () => {
    const bytes = Buffer.from([0, 1, 0, 255, 128, 0])
    const tag = bytesToJson(bytes)
    expect(tag).toEqual({ $bytes: bytes.toString('base64') })
    expect(fromTagged(tag as { $bytes: string })).toEqual(bytes)
    expect(fromTagged(bytesToJson(new Uint8Array(0)) as { $bytes: string })).toEqual(Buffer.alloc(0))
    // A view into a larger buffer encodes only its own bytes.
    const view = new Uint8Array(new Uint8Array([9, 9, 7, 8, 9]).buffer, 2, 2)
    expect(bytesToJson(view)).toEqual({ $bytes: Buffer.from([7, 8]).toString('base64') })
  })

  it('tags reals that must stay REAL, infinities included', () => {
    expect(realToJson(2)).toEqual({ $real: 2 })
    expect(fromTagged({ $real: 2 })).toBe(2)
    expect(realToJson(Number.POSITIVE_INFINITY)).toEqual({ $real: 'Infinity' })
    expect(fromTagged({ $real: '-Infinity' })).toBe(Number.NEGATIVE_INFINITY)
  })

  it('treats anything else as an ordinary JSON object', () => {
    for (const v of <JsonObject[]>[
      { $int: 5 },
      { $int: '1.5' },
      { $int: '007' },
      { $int: '9223372036854775808' },
      { $real: '2' },
      { $bytes: 'not base64!' },
      { $bytes: 'abc' },
      { $bytes: 'AA==', extra: 1 },
      { other: 'x' },
      {},
    ]) {
      expect(fromTagged(v), JSON.stringify(v)).toBeUndefined()
      expect(isTagged(v)).toBe(false)
    }
    expect(isTagged(null)).toBe(false)
    expect(isTagged(['$int'])).toBe(false)
    expect(isTagged('x')).toBe(false)
  })

  it('keeps every digit of a big integer key', () => {
    expect(keyText({ $int: '9007199254740993' })).toBe('9007199254740993')
    expect(keyText(7)).toBe('7')
    expect(keyFromText('9007199254740993')).toEqual({ $int: '9007199254740993' })
    expect(keyFromText('42')).toBe(42)
    expect(Number.isNaN(keyFromText('x'))).toBe(true)
  })
})
