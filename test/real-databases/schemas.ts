// Realistic app schemas made by plain SQL, and seeded data for them. The
// shapes are the ones real databases have and ours did not: foreign keys
// (self-references and ON DELETE CASCADE included), composite keys,
// WITHOUT ROWID tables with text keys, NUMERIC/DECIMAL/BOOLEAN/DATETIME
// columns, BLOBs, integers beyond 2^53, and a table without a primary key.
import Database from 'better-sqlite3'
import { mulberry32 } from '../../chaos/random.js'

/**
 * A music store shaped like the Chinook sample database: INTEGER PRIMARY KEY
 * keys, NUMERIC(10,2) prices, DATETIME columns, a self-reference
 * (Employee.ReportsTo), ON DELETE CASCADE (InvoiceLine, PlaylistTrack) and a
 * composite key (PlaylistTrack).
 */
export const CHINOOK_DDL = `
CREATE TABLE Artist (ArtistId INTEGER PRIMARY KEY, Name NVARCHAR(120));
CREATE TABLE Album (
  AlbumId INTEGER PRIMARY KEY,
  Title NVARCHAR(160) NOT NULL,
  ArtistId INTEGER NOT NULL REFERENCES Artist (ArtistId)
);
CREATE TABLE Genre (GenreId INTEGER PRIMARY KEY, Name NVARCHAR(120));
CREATE TABLE MediaType (MediaTypeId INTEGER PRIMARY KEY, Name NVARCHAR(120));
CREATE TABLE Track (
  TrackId INTEGER PRIMARY KEY,
  Name NVARCHAR(200) NOT NULL,
  AlbumId INTEGER REFERENCES Album (AlbumId),
  MediaTypeId INTEGER NOT NULL REFERENCES MediaType (MediaTypeId),
  GenreId INTEGER REFERENCES Genre (GenreId),
  Composer NVARCHAR(220),
  Milliseconds INTEGER NOT NULL,
  Bytes INTEGER,
  UnitPrice NUMERIC(10,2) NOT NULL
);
CREATE TABLE Employee (
  EmployeeId INTEGER PRIMARY KEY,
  LastName NVARCHAR(20) NOT NULL,
  FirstName NVARCHAR(20) NOT NULL,
  Title NVARCHAR(30),
  ReportsTo INTEGER REFERENCES Employee (EmployeeId),
  BirthDate DATETIME,
  HireDate DATETIME,
  City NVARCHAR(40),
  Country NVARCHAR(40),
  Email NVARCHAR(60)
);
CREATE TABLE Customer (
  CustomerId INTEGER PRIMARY KEY,
  FirstName NVARCHAR(40) NOT NULL,
  LastName NVARCHAR(20) NOT NULL,
  Company NVARCHAR(80),
  City NVARCHAR(40),
  Country NVARCHAR(40),
  Phone NVARCHAR(24),
  Email NVARCHAR(60) NOT NULL,
  SupportRepId INTEGER REFERENCES Employee (EmployeeId)
);
CREATE TABLE Invoice (
  InvoiceId INTEGER PRIMARY KEY,
  CustomerId INTEGER NOT NULL REFERENCES Customer (CustomerId),
  InvoiceDate DATETIME NOT NULL,
  BillingCity NVARCHAR(40),
  BillingCountry NVARCHAR(40),
  Total NUMERIC(10,2) NOT NULL
);
CREATE TABLE InvoiceLine (
  InvoiceLineId INTEGER PRIMARY KEY,
  InvoiceId INTEGER NOT NULL REFERENCES Invoice (InvoiceId) ON DELETE CASCADE,
  TrackId INTEGER NOT NULL REFERENCES Track (TrackId),
  UnitPrice NUMERIC(10,2) NOT NULL,
  Quantity INTEGER NOT NULL
);
CREATE TABLE Playlist (PlaylistId INTEGER PRIMARY KEY, Name NVARCHAR(120));
CREATE TABLE PlaylistTrack (
  PlaylistId INTEGER NOT NULL REFERENCES Playlist (PlaylistId) ON DELETE CASCADE,
  TrackId INTEGER NOT NULL REFERENCES Track (TrackId),
  PRIMARY KEY (PlaylistId, TrackId)
);
CREATE INDEX IFK_AlbumArtistId ON Album (ArtistId);
CREATE INDEX IFK_TrackAlbumId ON Track (AlbumId);
CREATE INDEX IFK_TrackGenreId ON Track (GenreId);
CREATE INDEX IFK_TrackMediaTypeId ON Track (MediaTypeId);
CREATE INDEX IFK_EmployeeReportsTo ON Employee (ReportsTo);
CREATE INDEX IFK_CustomerSupportRepId ON Customer (SupportRepId);
CREATE INDEX IFK_InvoiceCustomerId ON Invoice (CustomerId);
CREATE INDEX IFK_InvoiceLineInvoiceId ON InvoiceLine (InvoiceId);
CREATE INDEX IFK_InvoiceLineTrackId ON InvoiceLine (TrackId);
CREATE INDEX IFK_PlaylistTrackTrackId ON PlaylistTrack (TrackId);
`

/** The music store's tables, parents before children. */
export const CHINOOK_TABLES = [
  'Artist',
  'Album',
  'Genre',
  'MediaType',
  'Track',
  'Employee',
  'Customer',
  'Invoice',
  'InvoiceLine',
  'Playlist',
  'PlaylistTrack',
] as const

/**
 * An invoicing app: WITHOUT ROWID tables with text keys (unicode keys
 * included), a composite key (invoice_lines), BLOB attachments,
 * NUMERIC/DECIMAL/BOOLEAN/DATETIME columns, ON DELETE CASCADE, a column
 * without declared type holding every storage class, and a log table
 * without a primary key (which is not mirrored).
 */
export const INVOICING_DDL = `
CREATE TABLE currencies (
  code TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  symbol TEXT,
  decimals INTEGER NOT NULL DEFAULT 2
) WITHOUT ROWID;
CREATE TABLE clients (
  client_code TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  vat_number TEXT,
  is_company BOOLEAN NOT NULL DEFAULT 0,
  credit_limit DECIMAL(12,2),
  created_at DATETIME NOT NULL
) WITHOUT ROWID;
CREATE TABLE invoices (
  id INTEGER PRIMARY KEY,
  number TEXT NOT NULL UNIQUE,
  client_code TEXT NOT NULL REFERENCES clients (client_code),
  currency TEXT NOT NULL REFERENCES currencies (code),
  issued_on DATE NOT NULL,
  due_on DATE,
  paid BOOLEAN NOT NULL DEFAULT 0,
  total DECIMAL(12,2) NOT NULL,
  exchange_rate REAL,
  sequence_no BIGINT
);
CREATE TABLE invoice_lines (
  invoice_id INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  line_no INTEGER NOT NULL,
  description TEXT NOT NULL,
  quantity NUMERIC NOT NULL,
  unit_price DECIMAL(12,2) NOT NULL,
  vat_rate NUMERIC(5,2) NOT NULL,
  PRIMARY KEY (invoice_id, line_no)
);
CREATE TABLE attachments (
  id TEXT NOT NULL PRIMARY KEY,
  invoice_id INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  filename TEXT NOT NULL,
  mime TEXT NOT NULL,
  content BLOB NOT NULL
);
CREATE TABLE exact_values (k TEXT NOT NULL PRIMARY KEY, v, note TEXT) WITHOUT ROWID;
CREATE TABLE audit_log (at DATETIME NOT NULL, what TEXT NOT NULL);
CREATE INDEX invoices_client ON invoices (client_code);
CREATE INDEX attachments_invoice ON attachments (invoice_id);
`

/** The invoicing tables that are mirrored (every one with a primary key), parents before children. */
export const INVOICING_TABLES = [
  'currencies',
  'clients',
  'invoices',
  'invoice_lines',
  'attachments',
  'exact_values',
] as const

/** Opens (creating) an app database the way an app would: WAL, a busy timeout, foreign keys enforced. */
export function openAppDatabase(file: string, ddl?: string): Database.Database {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('busy_timeout = 10000')
  db.pragma('foreign_keys = ON')
  if (ddl) db.exec(ddl)
  return db
}

/** A small seeded PRNG (mulberry32): the same seed gives the same data on every run. */
export const seededRandom = mulberry32

const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!
const int = (rnd: () => number, lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1))
const WORDS = [
  'Night',
  'Blue',
  'Road',
  'Fire',
  'Heart',
  'Rain',
  'Stone',
  'Dream',
  'Gold',
  'River',
  'Ballade',
  'Señorita',
  'Straße',
  'Café',
  'Ødegaard',
  'Ünïcødé',
  '東京',
  'Łódź',
  "O'Neil",
]
const title = (rnd: () => number, n = 3) => Array.from({ length: int(rnd, 1, n) }, () => pick(rnd, WORDS)).join(' ')
const date = (rnd: () => number, fromYear: number, years: number) => {
  const d = new Date(Date.UTC(fromYear, 0, 1) + Math.floor(rnd() * years * 365 * 86_400_000))
  return `${d.toISOString().slice(0, 10)} 00:00:00`
}
/** A price as the app stores it in a NUMERIC(10,2) column: 0.99, 1.99, and whole amounts that SQLite keeps as INTEGER. */
const price = (cents: number) => Math.round(cents) / 100

/** How many rows each music-store table gets for a given scale (scale 1: about 3,000 rows). */
export interface ChinookCounts {
  artists: number
  albums: number
  tracks: number
  employees: number
  customers: number
  invoices: number
  playlists: number
}

export function chinookCounts(scale = 1): ChinookCounts {
  const s = (n: number) => Math.max(2, Math.round(n * scale))
  return {
    artists: s(60),
    albums: s(90),
    tracks: s(900),
    employees: 8,
    customers: s(60),
    invoices: s(300),
    playlists: s(12),
  }
}

/**
 * Fills an empty music store with seeded data (about 3,000 rows at scale 1).
 * Ids start at `idBase + 1`. Some employees report to one with a higher id
 * (a self-reference that only holds at commit), and the last tenth of the
 * tracks is never sold nor in a playlist (free to delete).
 */
export function seedChinook(db: Database.Database, seed = 1, scale = 1, idBase = 0): Record<string, number> {
  const rnd = seededRandom(seed)
  const n = chinookCounts(scale)
  const id = (i: number) => idBase + i
  const ins = (sql: string) => db.prepare(sql)
  const artist = ins('INSERT INTO Artist VALUES (?, ?)')
  const album = ins('INSERT INTO Album VALUES (?, ?, ?)')
  const genre = ins('INSERT INTO Genre VALUES (?, ?)')
  const media = ins('INSERT INTO MediaType VALUES (?, ?)')
  const track = ins('INSERT INTO Track VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
  const employee = ins('INSERT INTO Employee VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
  const customer = ins('INSERT INTO Customer VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
  const invoice = ins('INSERT INTO Invoice VALUES (?, ?, ?, ?, ?, ?)')
  const line = ins('INSERT INTO InvoiceLine VALUES (?, ?, ?, ?, ?)')
  const playlist = ins('INSERT INTO Playlist VALUES (?, ?)')
  const playlistTrack = ins('INSERT INTO PlaylistTrack VALUES (?, ?)')
  let lineId = 0
  db.transaction(() => {
    // The self-references below point forward: checked at commit.
    db.pragma('defer_foreign_keys = ON')
    for (let i = 1; i <= n.artists; i++) artist.run(id(i), i % 17 === 0 ? null : `${title(rnd)} ${i}`)
    for (let i = 1; i <= n.albums; i++) album.run(id(i), `${title(rnd, 4)} ${i}`, id(int(rnd, 1, n.artists)))
    const genres = ['Rock', 'Jazz', 'Metal', 'Alternative & Punk', 'Blues', 'Latin', 'Música Clássica', 'Soundtrack']
    for (const [i, g] of genres.entries()) genre.run(id(i + 1), g)
    const medias = ['MPEG audio file', 'Protected AAC audio file', 'Purchased AAC audio file', 'AAC audio file']
    for (const [i, m] of medias.entries()) media.run(id(i + 1), m)
    for (let i = 1; i <= n.tracks; i++) {
      track.run(
        id(i),
        `${title(rnd, 5)} #${i}`,
        i % 50 === 0 ? null : id(int(rnd, 1, n.albums)),
        id(int(rnd, 1, medias.length)),
        i % 40 === 0 ? null : id(int(rnd, 1, genres.length)),
        rnd() < 0.3 ? null : `${pick(rnd, WORDS)} & ${pick(rnd, WORDS)}`,
        int(rnd, 60_000, 600_000),
        rnd() < 0.05 ? null : int(rnd, 1_000_000, 12_000_000),
        price(pick(rnd, [99, 199, 100, 149])),
      )
    }
    // Employee 1 is the general manager; 2 and 3 report to 8 (a higher id), the others to 2 or 3.
    for (let i = 1; i <= n.employees; i++) {
      const boss = i === 1 ? null : i <= 3 ? id(n.employees) : i === n.employees ? id(1) : id(int(rnd, 2, 3))
      employee.run(
        id(i),
        `${pick(rnd, WORDS)}son`,
        pick(rnd, ['Andrew', 'Nancy', 'Jane', 'Margaret', 'Steve', 'Michael', 'Robert', 'Laura']),
        i === 1 ? 'General Manager' : 'Sales Support Agent',
        boss,
        date(rnd, 1950, 30),
        date(rnd, 2000, 5),
        pick(rnd, ['Calgary', 'Edmonton', 'Lethbridge']),
        'Canada',
        `employee${i}@chinookcorp.com`,
      )
    }
    for (let i = 1; i <= n.customers; i++) {
      customer.run(
        id(i),
        pick(rnd, ['Luís', 'Leonie', 'François', 'Bjørn', 'František', 'Helena', 'Astrid', 'Daan', 'Kara']),
        `${pick(rnd, WORDS)}`,
        rnd() < 0.3 ? `${pick(rnd, WORDS)} Ltda.` : null,
        pick(rnd, ['São José dos Campos', 'Stuttgart', 'Montréal', 'Oslo', 'Prague', 'Wien', 'Brussels']),
        pick(rnd, ['Brazil', 'Germany', 'Canada', 'Norway', 'Czech Republic', 'Austria', 'Belgium']),
        rnd() < 0.1 ? null : `+${int(rnd, 1, 99)} ${int(rnd, 1000000, 9999999)}`,
        `customer${i}@example.com`,
        rnd() < 0.1 ? null : id(int(rnd, 3, n.employees)),
      )
    }
    const sellable = Math.floor(n.tracks * 0.9)
    for (let i = 1; i <= n.invoices; i++) {
      const lines = int(rnd, 1, 9)
      let total = 0
      const rows: [number, number, number][] = []
      for (let l = 0; l < lines; l++) {
        const cents = pick(rnd, [99, 199])
        const qty = int(rnd, 1, 2)
        total += cents * qty
        rows.push([id(int(rnd, 1, sellable)), price(cents), qty])
      }
      invoice.run(
        id(i),
        id(int(rnd, 1, n.customers)),
        date(rnd, 2009, 5),
        pick(rnd, ['Oslo', 'Prague', 'Stuttgart']),
        pick(rnd, ['Norway', 'Czech Republic', 'Germany']),
        price(total),
      )
      for (const [t, p, q] of rows) line.run(id(++lineId), id(i), t, p, q)
    }
    for (let i = 1; i <= n.playlists; i++) {
      playlist.run(
        id(i),
        `${pick(rnd, ['Music', 'Movies', 'TV Shows', '90’s Music', 'Grunge', 'Brazilian Music'])} ${i}`,
      )
      const size = int(rnd, 5, 40)
      const chosen = new Set<number>()
      while (chosen.size < size) chosen.add(int(rnd, 1, sellable))
      for (const t of chosen) playlistTrack.run(id(i), id(t))
    }
  })()
  return countRows(db, CHINOOK_TABLES)
}

/** Keys that stress text keys: unicode (composed and decomposed forms are different keys), spaces, quotes, JSON-looking text. */
export const UNICODE_CLIENT_CODES = [
  'ÉLÉPHANT-001',
  'E\u0301LE\u0301PHANT-001',
  '北京-客户-7',
  'Zürich GmbH',
  'client "quoted"',
  '["not","an","array"]',
  '🍣-sushi-bar',
  'ⅷ-roman',
] as const

/** A PDF-like attachment: a real header, then seeded bytes (zeros and 0xFF included). */
export function fakePdf(rnd: () => number, size: number): Buffer {
  const head = Buffer.from('%PDF-1.4\n%\xE2\xE3\xCF\xD3\n', 'latin1')
  const body = Buffer.alloc(size)
  for (let i = 0; i < size; i++) body[i] = i % 97 === 0 ? 0 : Math.floor(rnd() * 256)
  return Buffer.concat([head, body, Buffer.from('\n%%EOF\n')])
}

/**
 * Values of every storage class for `exact_values.v` (a column without
 * declared type keeps what it is given): `sql` is how it is written, so that
 * REAL 1.0 stays REAL and integers past 2^53 stay exact.
 */
export const EXACT_VALUES: { k: string; sql: string; typeof: string }[] = [
  { k: 'int-small', sql: '42', typeof: 'integer' },
  { k: 'int-negative', sql: '-7', typeof: 'integer' },
  { k: 'int-2^53+1', sql: '9007199254740993', typeof: 'integer' },
  { k: 'int-max', sql: '9223372036854775807', typeof: 'integer' },
  { k: 'int-min', sql: '-9223372036854775808', typeof: 'integer' },
  { k: 'real-whole', sql: '1.0', typeof: 'real' },
  { k: 'real-tenth', sql: '0.1', typeof: 'real' },
  { k: 'real-huge', sql: '1.5e300', typeof: 'real' },
  { k: 'real-tiny', sql: '-2.5e-300', typeof: 'real' },
  { k: 'text', sql: "'plain text'", typeof: 'text' },
  { k: 'text-numeric', sql: "'00123'", typeof: 'text' },
  { k: 'text-empty', sql: "''", typeof: 'text' },
  { k: 'text-unicode', sql: "'naïve 😀 東京'", typeof: 'text' },
  { k: 'null', sql: 'NULL', typeof: 'null' },
  { k: 'blob', sql: "X'00FF10A0'", typeof: 'blob' },
  { k: 'blob-empty', sql: "X''", typeof: 'blob' },
  { k: 'blob-utf8-looking', sql: "X'68656C6C6F'", typeof: 'blob' },
]

/** Fills an empty invoicing database with seeded data (about 2,500 rows at scale 1). */
export function seedInvoicing(db: Database.Database, seed = 2, scale = 1): Record<string, number> {
  const rnd = seededRandom(seed)
  const invoices = Math.max(4, Math.round(400 * scale))
  db.transaction(() => {
    const currency = db.prepare('INSERT INTO currencies VALUES (?, ?, ?, ?)')
    for (const c of [
      ['EUR', 'Euro', '€', 2],
      ['CHF', 'Franc suisse', 'Fr.', 2],
      ['JPY', '日本円', '¥', 0],
      ['KWD', 'Kuwaiti dinar', 'د.ك', 3],
    ] as const)
      currency.run(...c)
    const client = db.prepare('INSERT INTO clients VALUES (?, ?, ?, ?, ?, ?)')
    const codes: string[] = [...UNICODE_CLIENT_CODES]
    for (let i = 1; i <= 40 * scale; i++) codes.push(`C-${String(i).padStart(5, '0')}`)
    for (const code of codes) {
      client.run(
        code,
        `${title(rnd)} ${rnd() < 0.5 ? 'SA' : 'AG'}`,
        rnd() < 0.3 ? null : `CHE-${int(rnd, 100, 999)}.${int(rnd, 100, 999)}.${int(rnd, 100, 999)}`,
        rnd() < 0.6 ? 1 : 0,
        rnd() < 0.2 ? null : pick(rnd, [1500, 2500.5, 10_000, 99.99]),
        date(rnd, 2015, 8),
      )
    }
    const invoice = db.prepare('INSERT INTO invoices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
    const line = db.prepare('INSERT INTO invoice_lines VALUES (?, ?, ?, ?, ?, ?)')
    const attachment = db.prepare('INSERT INTO attachments VALUES (?, ?, ?, ?, ?)')
    for (let i = 1; i <= invoices; i++) {
      const lines = int(rnd, 1, 6)
      let total = 0
      const rows: unknown[][] = []
      for (let l = 1; l <= lines; l++) {
        const qty = pick(rnd, [1, 2, 0.5, 12, 1.25])
        const unit = pick(rnd, [1999, 250, 100_000, 5])
        total += Math.round(qty * unit)
        rows.push([i, l, `${title(rnd, 4)} (${l})`, qty, unit / 100, pick(rnd, [7.7, 8.1, 0, 2.5, 19])])
      }
      invoice.run(
        i,
        `INV-2024-${String(i).padStart(6, '0')}`,
        pick(rnd, codes),
        pick(rnd, ['EUR', 'CHF', 'JPY', 'KWD']),
        date(rnd, 2024, 1).slice(0, 10),
        rnd() < 0.2 ? null : date(rnd, 2025, 1).slice(0, 10),
        rnd() < 0.5 ? 1 : 0,
        total / 100,
        rnd() < 0.5 ? null : pick(rnd, [1, 0.9312, 1.0825, 161.37]),
        // Past 2^53 on purpose: a JavaScript number would round it.
        BigInt('9007199254740993') + BigInt(i),
      )
      for (const r of rows) line.run(...r)
      if (i % 4 === 0) {
        attachment.run(`att-${i}`, i, `invoice-${i}.pdf`, 'application/pdf', fakePdf(rnd, int(rnd, 200, 3000)))
      }
    }
    const exact = EXACT_VALUES.map((e) => `('${e.k}', ${e.sql}, '${e.typeof}')`).join(', ')
    db.exec(`INSERT INTO exact_values VALUES ${exact}`)
    const log = db.prepare('INSERT INTO audit_log VALUES (?, ?)')
    for (let i = 0; i < 20; i++) log.run(date(rnd, 2024, 1), `event ${i}`)
  })()
  return countRows(db, [...INVOICING_TABLES, 'audit_log'])
}

export function countRows(db: Database.Database, tables: readonly string[]): Record<string, number> {
  return Object.fromEntries(
    tables.map((t) => [
      t,
      db
        .prepare(`SELECT count(*) FROM "${t.replaceAll('"', '""')}"`)
        .pluck()
        .get() as number,
    ]),
  )
}
