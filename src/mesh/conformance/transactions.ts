import { describe, expect } from 'vitest'
import { expectCode, ids } from './expectations.js'
import type { ConformanceSuite } from './suite.js'

/** Transactions: all of their writes or none. */
export function transactionsContract(suite: ConformanceSuite): void {
  const { test } = suite

  describe('transactions', () => {
    test('transaction commits all of its writes, or none when it throws', async (mesh) => {
      const value = await mesh.transaction(async (tx) => {
        await tx.upsert('orders', [{ _id: 'o1', total: 5 }])
        expect(await tx.increment('stock', 'tea', 'qty', -1)).toBe(-1)
        expect(await tx.get('orders', 'o1')).toEqual({ _id: 'o1', total: 5 })
        expect(ids(await tx.find({ collection: 'orders' }))).toEqual(['o1'])
        return 'value'
      })
      expect(value).toBe('value')
      expect(await mesh.get('orders', 'o1')).toEqual({ _id: 'o1', total: 5 })
      expect(await mesh.get('stock', 'tea')).toEqual({ _id: 'tea', qty: -1 })
      const before = await mesh.currentCursor()
      const failure = new Error('boom')
      await expect(
        mesh.transaction(async (tx) => {
          await tx.upsert('orders', [{ _id: 'o2', total: 7 }])
          await tx.remove('orders', ['o1'])
          await tx.increment('stock', 'tea', 'qty', -1)
          throw failure
        }),
      ).rejects.toBe(failure)
      expect(await mesh.find({ collection: 'orders' })).toEqual([{ _id: 'o1', total: 5 }])
      expect(await mesh.get('stock', 'tea')).toEqual({ _id: 'tea', qty: -1 })
      expect(await mesh.currentCursor()).toBe(before)
    })

    test('a rejected batch inside a transaction writes nothing of itself, the rest commits', async (mesh) => {
      await mesh.transaction(async (tx) => {
        await tx.upsert('orders', [{ _id: 'o1', total: 1 }])
        await expectCode(
          tx.upsert('orders', [
            { _id: 'o2', total: 2 },
            { _id: 'o3', total: Number.NaN },
          ]),
          'INVALID_DOCUMENT',
        )
        expect(ids(await tx.find({ collection: 'orders' }))).toEqual(['o1'])
      })
      expect(await mesh.find({ collection: 'orders' })).toEqual([{ _id: 'o1', total: 1 }])
    })
  })
}
