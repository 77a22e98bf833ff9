import { Field, Id, SyncModel } from '../../src/index.js'

/** Receipt types of the tax authority. */
export type ReceiptType = 'NS' | 'NC' | 'TS' | 'TC' | 'PS'

/**
 * Receipt and invoice counters of a branch: the counter model of the sync
 * framework. A till receives only its own branch's counters.
 */
@SyncModel('counters', { scope: ['branchId'] })
export class Counter {
  @Id() id!: string
  @Field({ column: 'branch_id', alias: 'branch_id', type: 'integer' }) branchId!: number
  @Field({ column: 'business_id', alias: 'business_id', type: 'integer' }) businessId!: number
  @Field({ column: 'receipt_type', alias: 'receipt_type' }) receiptType!: ReceiptType
  @Field({ column: 'tot_rcpt_no', alias: 'tot_rcpt_no', type: 'integer' }) totRcptNo!: number
  @Field({ column: 'cur_rcpt_no', alias: 'cur_rcpt_no', type: 'integer' }) curRcptNo!: number
  @Field({ column: 'invc_no', alias: 'invc_no', type: 'integer' }) invcNo!: number
  @Field({ column: 'bhf_id', alias: 'bhf_id' }) bhfId!: string
  @Field({ column: 'last_touched', alias: 'last_touched' }) lastTouched!: Date | null
  @Field({ column: 'created_at', alias: 'created_at' }) createdAt!: Date
}
