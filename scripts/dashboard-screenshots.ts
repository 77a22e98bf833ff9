// Regenerates the dashboard screenshots of the README and docs/dashboard.md
// (`npm run screenshots`): two tills of a small shop as `meshmirror peer`
// processes, one serving its dashboard, photographed by Debian's Chromium.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { type CliProcess, startCli } from '../test/cli/helpers.js'
import { launchChromium } from '../test/dashboard/browser.js'

const OUT = resolve(import.meta.dirname, '../docs/images')
const dir = mkdtempSync(join(tmpdir(), 'mm-screenshots-'))
const procs: CliProcess[] = []

const DDL = (strict: boolean) => `
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, points INTEGER NOT NULL DEFAULT 0);
CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL, stock INTEGER NOT NULL, supplier TEXT ${strict ? 'NOT NULL' : ''});
`

function config(name: string, extra: Record<string, unknown>): string {
  const file = join(dir, `${name}.json`)
  writeFileSync(
    file,
    JSON.stringify({
      database: `./${name}.db`,
      mesh: { dir: `./${name}-mesh` },
      meshId: 'corner-shop',
      secret: 'a secret for the screenshots',
      tables: [
        { table: 'customers', keys: 'global', counters: ['points'] },
        { table: 'products', counters: ['stock'] },
      ],
      ...extra,
    }),
  )
  return file
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true })
  const till1 = new Database(join(dir, 'till1.db'))
  till1.exec(DDL(true))
  const names = ['Ann', 'Bob', 'Cid', 'Dee', 'Eve', 'Fay', 'Gus', 'Hal']
  names.forEach((n, i) => {
    till1.prepare('INSERT INTO customers VALUES (?, ?, ?, ?)').run(i + 1, n, `${n.toLowerCase()}@example.com`, i * 10)
  })
  for (const [sku, name, price] of [
    ['tea', 'Tea', 2.5],
    ['milk', 'Milk', 1.2],
    ['bread', 'Bread', 3.1],
  ] as const) {
    till1.prepare('INSERT INTO products VALUES (?, ?, ?, 100, ?)').run(sku, name, price, 'Fresh Ltd')
  }
  const till2 = new Database(join(dir, 'till2.db'))
  till2.exec(DDL(false))
  // Both tills signed up customer 9 before they first met: a collision, kept as a conflict.
  till1.prepare("INSERT INTO customers VALUES (9, 'Ida', 'ida@example.com', 0)").run()
  till2.prepare("INSERT INTO customers VALUES (9, 'Ivo', 'ivo@example.com', 0)").run()
  const till3 = new Database(join(dir, 'till3.db'))
  till3.exec(DDL(false))

  const a = startCli([
    'peer',
    '--json',
    '--dashboard',
    '0',
    '--config',
    config('till1', { listen: { host: '127.0.0.1', port: 0 } }),
  ])
  procs.push(a)
  const dashboard = await a.event('dashboard')
  const live = await a.event('live')
  const peers = { peers: [`ws://127.0.0.1:${live.port}`] }
  const b = startCli(['peer', '--json', '--config', config('till2', peers)])
  const c = startCli(['peer', '--json', '--config', config('till3', peers)])
  procs.push(b, c)
  await b.event('live')
  await c.event('live')
  await wait(2000)
  // Sales on every till for a while, so the charts have something to draw.
  for (let i = 0; i < 20; i++) {
    till2.prepare('UPDATE products SET stock = stock - 1 WHERE sku = ?').run(i % 2 ? 'tea' : 'milk')
    till3.prepare('UPDATE customers SET points = points + 5 WHERE id = ?').run((i % names.length) + 1)
    till1.prepare('UPDATE products SET stock = stock - 1 WHERE sku = ?').run('bread')
    await wait(400)
  }
  till2.prepare("UPDATE customers SET email = 'ann@newmail.example' WHERE id = 1").run()
  till2.prepare("INSERT INTO products (sku, name, price, stock) VALUES ('mate', 'Mate', 4.2, 12)").run()
  await wait(2500)
  // One till leaves: the mesh page shows when it was last seen.
  c.child.kill('SIGKILL')
  await wait(3000)

  const browser = await launchChromium()
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 760 } })
    const base = dashboard.url as string
    for (const p of ['mesh', 'tables', 'problems']) {
      await page.goto(`${base}#${p}`)
      await page.locator(`#page-${p}`).waitFor()
      await wait(1500)
      await page.screenshot({ path: join(OUT, `dashboard-${p}.png`), fullPage: true })
    }
    await page.goto(`${base}#browse?table=customers&id=1`)
    await page.locator('#row tr[data-field=email]').waitFor()
    await page.locator('#browse-form button').click()
    await wait(1000)
    await page.screenshot({ path: join(OUT, 'dashboard-browse.png'), fullPage: true })
    const phone = await browser.newPage({ viewport: { width: 375, height: 740 }, colorScheme: 'dark' })
    await phone.goto(`${base}#browse?table=customers&id=1`)
    await phone.locator('#row tr[data-field=email]').waitFor()
    await phone.locator('#row tr[data-field=email]').scrollIntoViewIfNeeded()
    await wait(500)
    await phone.screenshot({ path: join(OUT, 'dashboard-browse-phone-dark.png') })
  } finally {
    await browser.close()
  }
  console.log(`screenshots written to ${OUT}`)
}

main()
  .catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(async () => {
    for (const p of procs) {
      if (p.child.exitCode === null) p.child.kill('SIGTERM')
      await p.exited
    }
    rmSync(dir, { recursive: true, force: true })
  })
