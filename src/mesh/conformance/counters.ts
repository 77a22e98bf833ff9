import { describe, expect } from 'vitest'
import { expectCode } from './expectations.js'
import type { ConformanceSuite } from './suite.js'

/** Counter fields: increments from 0, how upserts and removals treat them, type mismatches. */
export function countersContract(suite: ConformanceSuite): void {
  const { test } = suite

  describe('counters', () => {
    test('increment adds to counters, starting from 0, and upsert resets them', async (mesh) => {
      expect(await mesh.increment('stock', 'sku1', 'qty', 10)).toBe(10)
      expect(await mesh.increment('stock', 'sku1', 'qty', -3)).toBe(7)
      expect(await mesh.get('stock', 'sku1')).toEqual({ _id: 'sku1', qty: 7 })
      await mesh.upsert('stock', [{ _id: 'sku1', qty: 100, name: 'tea' }])
      expect(await mesh.increment('stock', 'sku1', 'qty', 1)).toBe(101)
      expect(await mesh.increment('stock', 'sku1', 'other', 0.5)).toBe(0.5)
      expect(await mesh.get('stock', 'sku1')).toEqual({ _id: 'sku1', qty: 101, name: 'tea', other: 0.5 })
    })

    test('increment on a missing document or field starts at 0', async (mesh) => {
      expect(await mesh.increment('stock', 'new', 'qty', 3)).toBe(3)
      expect(await mesh.get('stock', 'new')).toEqual({ _id: 'new', qty: 3 })
      await mesh.upsert('stock', [{ _id: 'named', name: 'tea' }])
      expect(await mesh.increment('stock', 'named', 'qty', -2)).toBe(-2)
      expect(await mesh.get('stock', 'named')).toEqual({ _id: 'named', name: 'tea', qty: -2 })
      await mesh.remove('stock', ['named'])
      expect(await mesh.increment('stock', 'named', 'qty', 5)).toBe(5)
      expect((await mesh.get('stock', 'named'))?.qty).toBe(5)
    })

    test('a merge that does not mention the counter keeps it; replace drops it', async (mesh) => {
      await mesh.increment('stock', 's', 'qty', 4)
      await mesh.upsert('stock', [{ _id: 's', name: 'tea' }])
      expect(await mesh.get('stock', 's')).toEqual({ _id: 's', qty: 4, name: 'tea' })
      expect(await mesh.increment('stock', 's', 'qty', 1)).toBe(5)
      await mesh.upsert('stock', [{ _id: 's', name: 'tea' }], { mode: 'replace' })
      expect(await mesh.get('stock', 's')).toEqual({ _id: 's', name: 'tea' })
      expect(await mesh.increment('stock', 's', 'qty', 1)).toBe(1)
    })

    test('increment on a non-number field fails with TYPE_MISMATCH and changes nothing', async (mesh) => {
      await mesh.upsert('stock', [{ _id: 's', name: 'tea', off: null, list: [1] }])
      const before = await mesh.currentCursor()
      await expectCode(mesh.increment('stock', 's', 'name', 1), 'TYPE_MISMATCH')
      await expectCode(mesh.increment('stock', 's', 'off', 1), 'TYPE_MISMATCH')
      await expectCode(mesh.increment('stock', 's', 'list', 1), 'TYPE_MISMATCH')
      expect(await mesh.get('stock', 's')).toEqual({ _id: 's', name: 'tea', off: null, list: [1] })
      expect(await mesh.currentCursor()).toBe(before)
    })
  })
}
