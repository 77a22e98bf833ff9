import type { Command } from 'commander'
import { type DemoVerdict, runDemo } from '../demo/run-demo.js'
import { integerOption, numberOption } from './option-parsers.js'
import { ExitCode, makeOutput, reportError } from './output.js'

const HELP = `
A shop with N tills, each its own process with its own SQLite database and
mesh directory, replicating over loopback WebSockets. Every till records
sales (orders, order items, stock decrements as counters, receipt numbers)
at a steady rate; one till is killed (SIGKILL) and restarted midway; one
sells while disconnected and catches up. Then every database is checked:
identical data, stock equal to initial stock minus everything sold on every
till, and every order each till reported creating present everywhere.

With --hub, a chain: two shops of N tills, each shop on its own LAN, the
two bridged only by a NATS JetStream hub (a nats-server the demo starts on
loopback; it must be installed). Shop B's line to the hub is cut for a
while instead of one till going offline: its tills sell on and sync on their
LAN, then catch up through the hub.

Examples:
  $ npm run demo
  $ meshmirror demo --hub --tills 3 --duration 20
  $ meshmirror demo --tills 5 --duration 30
  $ meshmirror demo --json | jq .checks        # progress goes to stderr

Exit codes:
  0  the tills converged: every check passed
  1  wrong input (e.g. --tills 1)
  2  an unexpected failure (a till could not start…)
  4  the tills did not converge (the verdict says which check failed)`

function print(v: DemoVerdict): string {
  const mark = (ok: boolean) => (ok ? 'ok  ' : 'FAIL')
  const lines = [
    '',
    `${v.tills.length} tills, ${v.durationSeconds} s: ${v.orders} orders, ${v.orderItems} order items, ${v.unitsSold} units sold`,
    ...v.tills.map(
      (t) =>
        `  ${t.name}  created ${String(t.ordersCreated).padStart(4)} orders${t.restarts ? `, restarted ${t.restarts}×` : ''}  holds ${t.rows.orders} orders  data ${t.fingerprint}`,
    ),
    ...(v.hub
      ? [
          `  hub ${v.hub.url}: shops ${v.hub.shops.join(', ')}; shop ${v.hub.cutOff} cut off from it for a while, ${v.hub.ordersWhileCutOff} orders made meanwhile`,
        ]
      : []),
    `  ${mark(v.checks.identical)} every database holds identical data`,
    `  ${mark(v.checks.stockConsistent)} stock = initial stock − units sold on every till, on every till`,
    `  ${mark(v.checks.nothingLost)} every order each till reported creating exists on every till`,
    `  ${mark(v.checks.ordersComplete)} no order item without its order`,
  ]
  for (const l of v.lost.slice(0, 5)) lines.push(`  lost: ${l.order} missing on ${l.missingOn.join(', ')}`)
  for (const s of v.stockMismatches.slice(0, 5)) {
    lines.push(`  stock: ${s.till} ${s.product} is ${s.actual}, expected ${s.expected}`)
  }
  lines.push(v.converged ? `converged: yes, ${v.convergedAfterMs} ms after the last sale` : 'converged: NO')
  if (v.dir) lines.push(`kept in ${v.dir}`)
  return lines.join('\n')
}

/** `meshmirror demo [--tills N] [--duration S] [--json]`. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run a shop of tills in separate processes, crash one, cut one off, and check they converge')
    .option('--tills <n>', 'number of tills (processes), 2-16 (per shop with --hub)', integerOption, 3)
    .option(
      '--hub',
      'two shops, each on its LAN, bridged by a NATS JetStream hub; one shop cut off from it for a while',
    )
    .option('--duration <seconds>', 'seconds of selling', numberOption, 10)
    .option('--keep', 'keep the shop directory (databases, mesh directories) for a look afterwards')
    .option('--json', 'print the verdict as one JSON document on stdout; progress goes to stderr')
    .addHelpText('after', HELP)
    .action(async (opts: { tills: number; duration: number; keep?: boolean; json?: boolean; hub?: boolean }) => {
      const output = makeOutput(opts.json === true)
      try {
        const verdict = await runDemo({
          tills: opts.tills,
          durationSeconds: opts.duration,
          keep: opts.keep === true,
          hub: opts.hub === true,
          onProgress: (line) => (output.json ? output.err(line) : output.out(line)),
        })
        output.out(output.json ? JSON.stringify(verdict, null, 2) : print(verdict))
        process.exitCode = verdict.converged ? ExitCode.OK : ExitCode.NOT_CONVERGED
      } catch (error) {
        process.exitCode = reportError(output, error)
      }
    })
}
