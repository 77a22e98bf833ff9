import { existsSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { createServer } from 'node:net'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { tempDirs, waitFor } from '../bridge/helpers/wait.js'
import { type CliProcess, runCli, startCli, writeConfig } from '../cli/helpers.js'
import { ARTIFACTS, browserTitle, launchChromium, NO_BROWSER } from './browser.js'

// The dashboard as a person sees it: two real `meshmirror peer` processes,
// one serving its dashboard, read by a real Chromium.

const dirs = tempDirs()
const running: CliProcess[] = []
const dbs: Database.Database[] = []
let browser: Browser

beforeAll(async () => {
  if (!NO_BROWSER) browser = await launchChromium()
}, 60_000)

afterAll(async () => {
  await browser?.close()
})

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null) p.child.kill('SIGKILL')
    await p.exited
  }
  for (const db of dbs.splice(0)) db.close()
  dirs.cleanup()
})

function appDb(file: string, ddl: string): Database.Database {
  const db = new Database(file)
  db.pragma('busy_timeout = 10000')
  db.exec(ddl)
  dbs.push(db)
  return db
}

const config = (db: string, mesh: string) => ({
  database: db,
  mesh: { dir: mesh },
  meshId: 'dashboard-test',
  secret: 'a test secret',
  tables: [
    { table: 'customers', keys: 'global' },
    { table: 'products', collection: 'items', counters: ['stock'] },
  ],
})

// The till serving the dashboard requires a note on every product; the other till does not.
// It also keeps a table of its own whose foreign key to customers has no index: a warning, shown above every page.
const DDL_A = `
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL, note TEXT NOT NULL);
CREATE TABLE visits (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id));
`
const DDL_B = `
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL, note TEXT);
`

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true })
}

const short = (site: string) => (site.length > 14 ? `${site.slice(0, 12)}…` : site)

describe.skipIf(NO_BROWSER !== undefined)(browserTitle('the dashboard'), () => {
  it('shows the other peer live then gone, who wrote a field, and a refused document with its reason', async () => {
    const dir = dirs.make('dashboard')
    const a = appDb(join(dir, 'a.db'), DDL_A)
    a.prepare("INSERT INTO customers VALUES (1, 'Ann', 'ann@old.example')").run()
    a.prepare("INSERT INTO products VALUES ('tea', 'Tea', 100, 'loose leaf')").run()
    const b = appDb(join(dir, 'b.db'), DDL_B)
    // Both tills created customer 9 before they ever met: a create/create collision, kept as a conflict.
    a.prepare("INSERT INTO customers VALUES (9, 'Zed on A', NULL)").run()
    b.prepare("INSERT INTO customers VALUES (9, 'Zed on B', NULL)").run()

    const pa = startCli([
      'peer',
      '--json',
      '--dashboard',
      '0',
      '--config',
      writeConfig(dir, 'a', { ...config('./a.db', './a-mesh'), listen: { host: '127.0.0.1', port: 0 } }),
    ])
    running.push(pa)
    const served = await pa.event('dashboard')
    expect(served.host).toBe('127.0.0.1')
    expect(served.tokenGenerated).toBe(false)
    const live = await pa.event('live')
    const siteA = live.siteId as string

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
    await page.goto(served.url as string)
    await expect.poll(() => page.locator('#site').textContent(), { timeout: 15_000 }).toContain(short(siteA))
    expect(await page.locator('#mesh-devices').textContent()).toContain('No device has linked to this one yet')
    await expect
      .poll(() => page.locator('#warnings').textContent(), { timeout: 15_000 })
      .toContain('visits (customer_id) references customers with no index')
    expect(await page.locator('#warnings').isVisible()).toBe(true)

    // The other till joins: the mesh page shows it, live, without a reload.
    const pb = startCli([
      'peer',
      '--json',
      '--config',
      writeConfig(dir, 'b', { ...config('./b.db', './b-mesh'), peers: [`ws://127.0.0.1:${live.port}`] }),
    ])
    running.push(pb)
    const siteB = (await pb.event('live')).siteId as string
    const deviceRow = page.locator('#mesh-devices tr', { hasText: siteB })
    await expect.poll(() => deviceRow.locator('.badge').textContent(), { timeout: 20_000 }).toBe('live')
    await expect.poll(() => page.locator('#mesh-graph svg text', { hasText: short(siteB) }).count()).toBe(1)
    await shot(page, 'mesh')

    // Till B changes Ann's e-mail with plain SQL; Browse names B as the writer of that field, A of the others.
    await waitFor(() => b.prepare('SELECT count(*) FROM customers WHERE id = 1').pluck().get() === 1, {
      timeout: 20_000,
      message: 'Ann on till B',
    })
    b.prepare("UPDATE customers SET email = 'ann@new.example' WHERE id = 1").run()
    await waitFor(() => a.prepare('SELECT email FROM customers WHERE id = 1').pluck().get() === 'ann@new.example', {
      timeout: 20_000,
      message: "B's change on till A",
    })
    await page.keyboard.press('Tab') // the skip link first: the page is reachable by keyboard
    await page.getByRole('link', { name: 'Browse' }).focus()
    await page.keyboard.press('Enter')
    await expect.poll(() => page.locator('#page-browse').isVisible()).toBe(true)
    await page.locator('#browse-form select[name=table]').selectOption('customers')
    await page.locator('#browse-form input[name=q]').fill('ann@new')
    await page.keyboard.press('Enter')
    const result = page.locator('#results button', { hasText: 'ann@new.example' })
    await result.waitFor({ timeout: 10_000 })
    await result.focus()
    await page.keyboard.press('Enter')
    const email = page.locator('#row tr[data-field=email]')
    await email.waitFor({ timeout: 10_000 })
    expect(await email.locator('td[data-label=Row]').textContent()).toBe('ann@new.example')
    expect(await email.locator('td[data-label=Document]').textContent()).toBe('ann@new.example')
    expect(await email.locator('td.writer').textContent()).toBe(short(siteB))
    expect(await page.locator('#row tr[data-field=name] td.writer').textContent()).toBe('this device')
    // The change as the dashboard saw it arrive, in the row's history.
    await expect
      .poll(() => page.locator('#row .history').textContent(), { timeout: 10_000 })
      .toContain(`received: written by ${short(siteB)} · email`)
    await shot(page, 'browse')

    // Till B adds a product without a note: till A's NOT NULL column refuses it, and Problems says why.
    b.prepare("INSERT INTO products (sku, name, stock) VALUES ('mate', 'Mate', 5)").run()
    await page.getByRole('link', { name: /Problems/ }).click()
    const problem = page.locator('#problems li', { hasText: 'mate' })
    await problem.waitFor({ timeout: 20_000 })
    expect(await problem.locator('.badge').textContent()).toBe('refused')
    // The NOT NULL column is checked before the write: the document lacks it, and is kept with why.
    expect(await problem.locator('p').textContent()).toBe('invalid-document: note is missing')
    expect(await problem.locator('code').textContent()).toBe('DOCUMENT_REJECTED')
    // Filtering by kind keeps it; another kind hides it.
    await page.locator('#problem-filter select[name=kind]').selectOption('conflict')
    const conflict = page.locator('#problems li', { hasText: 'created on two devices' })
    await conflict.waitFor({ timeout: 10_000 })
    // Filtered to conflicts: the refused product leaves the list.
    await expect.poll(() => page.locator('#problems li').count()).toBe(1)
    expect(await conflict.locator('a').textContent()).toBe('9')
    expect(await conflict.locator('.badge').textContent()).toBe('conflict')
    await page.locator('#problem-filter input[name=q]').fill('no such text')
    await expect.poll(() => page.locator('#problems').textContent()).toContain('No problem matches')
    await page.locator('#problem-filter input[name=q]').fill('')
    await page.locator('#problem-filter select[name=kind]').selectOption('refused')
    await expect.poll(() => page.locator('#problems li').count()).toBe(1)
    await problem.waitFor()
    await page.locator('#problem-filter select[name=kind]').selectOption('')
    await expect.poll(() => page.locator('#problems li').count()).toBe(2)
    await shot(page, 'problems')

    await page.getByRole('link', { name: 'Tables' }).click()
    const products = page.locator('#tables article', { hasText: 'products' })
    await expect.poll(() => products.locator('.stat', { hasText: 'refused' }).locator('b').textContent()).toBe('1')
    await shot(page, 'tables')

    // A narrow phone screen in the dark.
    const phone = await browser.newPage({ viewport: { width: 375, height: 812 }, colorScheme: 'dark' })
    await phone.goto(`${served.url}#browse?table=customers&id=1`)
    await phone.locator('#row tr[data-field=email]').waitFor({ timeout: 10_000 })
    const overflow = await phone.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth')
    expect(overflow).toBeLessThanOrEqual(0)
    await shot(phone, 'browse-375-dark')
    await phone.goto(`${served.url}#mesh`)
    await phone.locator('#mesh-devices tr', { hasText: siteB }).waitFor({ timeout: 10_000 })
    await shot(phone, 'mesh-375-dark')
    await phone.close()

    // Till B dies: the mesh page shows it gone, with when it was last seen.
    await page.getByRole('link', { name: 'Mesh' }).click()
    pb.child.kill('SIGKILL')
    await pb.exited
    await expect.poll(() => deviceRow.locator('.badge').textContent(), { timeout: 20_000 }).toBe('gone')
    expect(await deviceRow.locator('td[data-label="Last seen"]').textContent()).toMatch(/ago$/)
    await shot(page, 'mesh-gone')
    await page.close()
  }, 180_000)

  it('shows startup progress as a bar while a table is seeded, and drops it once live', async () => {
    const dir = dirs.make('dashboard-seed')
    const db = appDb(join(dir, 's.db'), DDL_B)
    const insert = db.prepare('INSERT INTO customers VALUES (?, ?, ?)')
    db.transaction(() => {
      for (let i = 1; i <= 300; i++) insert.run(i, `Customer ${i}`, null)
    })()
    // Small, slowed batches: seeding takes a few seconds, long enough to be seen.
    const slow = { ...config('./s.db', './s-mesh'), settings: { seedBatchSize: 10, delayBetweenBatches: 250 } }
    const ps = startCli(['peer', '--json', '--dashboard', '0', '--config', writeConfig(dir, 's', slow)])
    running.push(ps)
    const served = await ps.event('dashboard')
    const page = await browser.newPage({ viewport: { width: 900, height: 700 } })
    await page.goto(`${served.url}#tables`)
    const card = page.locator('#tables article', { hasText: 'customers' })
    const bar = card.locator('progress')
    await bar.waitFor({ timeout: 15_000 })
    expect(await bar.getAttribute('max')).toBe('300')
    await expect.poll(async () => Number(await bar.getAttribute('value')), { timeout: 15_000 }).toBeGreaterThan(0)
    expect(await card.locator('label').textContent()).toMatch(/^seed \d+ \/ 300/)
    await shot(page, 'tables-seeding')
    await ps.event('live')
    await expect.poll(() => bar.count(), { timeout: 10_000 }).toBe(0)
    expect(await card.locator('.stat', { hasText: 'documents' }).locator('b').textContent()).toBe('300')
    await page.close()
  }, 90_000)

  it('finds a row of a local-keyed table by value, and shows it under its mesh id', async () => {
    const dir = dirs.make('dashboard-local')
    const db = appDb(join(dir, 'l.db'), 'CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, qty INTEGER)')
    db.prepare("INSERT INTO orders VALUES (1, 'tea', 2), (2, 'cake', 1)").run()
    const local = { ...config('./l.db', './l-mesh'), tables: [{ table: 'orders', keys: 'local' }] }
    const pl = startCli(['peer', '--json', '--dashboard', '0', '--config', writeConfig(dir, 'l', local)])
    running.push(pl)
    const served = await pl.event('dashboard')
    await pl.event('live')
    const api = (path: string) => fetch(new URL(path, served.url as string)).then((r) => r.json())
    const found = (await api('/api/search?table=orders&q=cake')) as { rowId: string; row: { item: string } }[]
    expect(found).toHaveLength(1)
    expect(found[0]!.row.item).toBe('cake')
    // The mesh names a local-keyed row by its creating device and its key.
    expect(found[0]!.rowId).toMatch(/^[a-z0-9]+:2$/)
    const view = (await api(`/api/row?table=orders&id=${encodeURIComponent(found[0]!.rowId)}`)) as {
      docId: string
      doc: { item: string }
      fields: { fields: { field: string; site: string }[] }
    }
    expect(view.docId).toBe(found[0]!.rowId)
    expect(view.doc.item).toBe('cake')
    expect(view.fields.fields.map((f) => f.field)).toEqual(['item', 'qty'])
  }, 60_000)

  it('off loopback, answers 401 and shows nothing without the token; with it, the read-only page', async () => {
    const dir = dirs.make('dashboard-token')
    const db = appDb(join(dir, 'c.db'), DDL_B)
    db.prepare("INSERT INTO customers VALUES (7, 'Secret Customer', 'hidden@example')").run()
    const pc = startCli([
      'peer',
      '--json',
      '--dashboard',
      '0.0.0.0:0',
      '--config',
      writeConfig(dir, 'c', config('./c.db', './c-mesh')),
    ])
    running.push(pc)
    const served = await pc.event('dashboard')
    expect(served.host).toBe('0.0.0.0')
    expect(served.tokenGenerated).toBe(true)
    const url = new URL(served.url as string)
    const token = url.searchParams.get('token')
    expect(token?.length).toBeGreaterThanOrEqual(16)
    const base = `http://127.0.0.1:${served.port}`
    await pc.event('live')

    for (const path of ['/', '/api/overview', '/api/search?table=customers&q=Secret', '/api/events', '/app.js']) {
      const res = await fetch(`${base}${path}`)
      expect(res.status, path).toBe(401)
      const body = await res.text()
      expect(body).not.toContain('Secret Customer')
      expect(body).not.toContain('customers')
    }
    expect(
      (await fetch(`${base}/api/overview`, { headers: { Authorization: 'Bearer wrong-token-xxxxxxxx' } })).status,
    ).toBe(401)

    const page = await browser.newPage()
    const denied = await page.goto(`${base}/`)
    expect(denied?.status()).toBe(401)
    expect(await page.locator('body').textContent()).toContain('401 Unauthorized')
    await shot(page, 'unauthorized')

    // The printed address carries the token: the page opens, and the token leaves the address bar.
    await page.goto(`${base}/?token=${token}`)
    expect(new URL(page.url()).search).toBe('')
    await page.getByRole('link', { name: 'Browse' }).click()
    await page.locator('#browse-form input[name=q]').fill('Secret')
    await page.locator('#browse-form button').click()
    await page.locator('#results button', { hasText: '7' }).waitFor({ timeout: 10_000 })

    // Read-only: nothing but GET and HEAD, even with the token.
    const post = await fetch(`${base}/api/row?table=customers&id=7`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    })
    expect(post.status).toBe(405)
    const authorised = await fetch(`${base}/api/row?table=customers&id=7`, {
      headers: { Authorization: `Bearer ${token}` },
    })
    expect(((await authorised.json()) as { row: { name: string } }).row.name).toBe('Secret Customer')
    await page.close()
  }, 120_000)
})

describe('the dashboard, refused before anything is opened', () => {
  it('names a bad --dashboard address, a short token and a port in use, and leaves no mesh directory', async () => {
    const dir = dirs.make('dashboard-bad')
    appDb(join(dir, 'd.db'), DDL_B)
    const file = writeConfig(dir, 'd', config('./d.db', './d-mesh'))
    const bad = await runCli(['peer', '--json', '--dashboard', 'nowhere', '--config', file])
    expect(bad.code).toBe(1)
    expect(bad.stdout + bad.stderr).toMatch(/INVALID_OPTIONS[\s\S]*expected \[host:\]port/)

    const short = writeConfig(dir, 'short', { ...config('./d.db', './d-mesh'), dashboard: { port: 0, token: 'short' } })
    const refused = await runCli(['peer', '--json', '--config', short])
    expect(refused.code).toBe(1)
    expect(refused.stdout + refused.stderr).toMatch(
      /INVALID_CONFIG[\s\S]*dashboard\.token: expected at least 16 characters/,
    )

    const taken = createServer()
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r))
    const port = (taken.address() as AddressInfo).port
    const inUse = await runCli(['peer', '--json', '--dashboard', String(port), '--config', file])
    taken.close()
    expect(inUse.code).toBe(1)
    expect(inUse.stdout + inUse.stderr).toMatch(/ADDRESS_IN_USE[\s\S]*dashboard: 127\.0\.0\.1:\d+ is in use/)
    expect(existsSync(join(dir, 'd-mesh'))).toBe(false)
  }, 60_000)
})
