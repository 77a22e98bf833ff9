import { describe, expect, it } from 'vitest'
import { decodeToken, docKey, encodeToken, isPrefix, parseKey, scopeToken, UNSCOPED } from './keys.js'

describe('hub keys', () => {
  it('keeps plain ids readable and encodes the rest, both ways', () => {
    expect(encodeToken('o-1001')).toBe('o-1001')
    for (const id of ['a.b', 'with space', 'é', '=x', '_lead', '*', '>', 'x'.repeat(65), '']) {
      const token = encodeToken(id)
      expect(token).toMatch(/^[A-Za-z0-9_=-]*$/)
      expect(token.startsWith('=') || id === '').toBe(true)
      expect(decodeToken(token)).toBe(id)
    }
    // A token no encoder wrote is refused, not read as another id.
    expect(decodeToken('=aGk=')).toBeUndefined()
    expect(decodeToken('_x')).toBeUndefined()
  })

  it('files a document under its scope values', () => {
    expect(scopeToken([], [])).toBe(UNSCOPED)
    expect(scopeToken(['branch_id'], [12])).toBe('12')
    expect(scopeToken(['branch'], ['north-1'])).toBe('north-1')
    const two = scopeToken(['a', 'b'], [1, 'x'])
    expect(two.startsWith('=')).toBe(true)
    expect(two).not.toBe(scopeToken(['a', 'b'], [1, 'y']))
    expect(scopeToken(['flag'], [true])).not.toBe(scopeToken(['flag'], [false]))
    expect(scopeToken(['x'], [undefined])).toBe(scopeToken(['x'], [null]))
  })

  it('builds and parses keys under a prefix', () => {
    const key = docKey('chain.shop-a', 'orders', '12', 'o 1')
    expect(key).toBe(`chain.shop-a.orders.12.${encodeToken('o 1')}`)
    expect(parseKey('chain.shop-a', key)).toEqual({ collection: 'orders', scope: '12', id: 'o 1' })
    expect(parseKey('chain.shop-b', key)).toBeUndefined()
    expect(parseKey('chain', key)).toBeUndefined()
    expect(isPrefix('chain.shop-a')).toBe(true)
    for (const bad of ['', 'a..b', 'a.*', 'a.>', '.a', 'a b']) expect(isPrefix(bad)).toBe(false)
  })
})
