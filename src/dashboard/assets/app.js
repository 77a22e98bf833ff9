// The meshmirror dashboard: plain DOM and inline SVG, no dependencies. The
// server pushes an overview about once a second over server-sent events; the
// pages that list (problems, browse) fetch on demand.

const $ = (sel) => document.querySelector(sel)
const SVG = 'http://www.w3.org/2000/svg'

/** Makes an element: h('td', { class: 'x', 'data-label': 'y' }, 'text', child…). */
function h(tag, attrs, ...children) {
  const el = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag)
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children.flat(Number.POSITIVE_INFINITY)) {
    if (c === undefined || c === null || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return el
}

const state = { overview: undefined, page: 'mesh', selected: undefined, rowTimer: 0, warnings: '' }

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  return `${Math.round(s / 3600)} h ago`
}

function when(iso) {
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString()
}

function shortSite(site) {
  if (!site) return '?'
  return site.length > 14 ? `${site.slice(0, 12)}…` : site
}

function deviceName(site) {
  if (state.overview && site === state.overview.siteId) return `this device (${shortSite(site)})`
  return shortSite(site)
}

function show(value) {
  if (value === undefined) return h('span', { class: 'empty' }, 'absent')
  if (value === null) return h('span', { class: 'mono' }, 'NULL')
  return h('span', { class: 'mono' }, typeof value === 'string' ? value : JSON.stringify(value))
}

async function getJson(path) {
  const res = await fetch(path, { headers: { Accept: 'application/json' } })
  if (!res.ok) throw new Error(`${res.status} ${(await res.json().catch(() => ({}))).error ?? res.statusText}`)
  return res.json()
}

// ---- navigation ------------------------------------------------------------

function route() {
  const page = (location.hash.slice(1).split('?')[0] || 'mesh').toLowerCase()
  state.page = ['mesh', 'tables', 'problems', 'browse'].includes(page) ? page : 'mesh'
  for (const s of document.querySelectorAll('main section')) s.hidden = s.dataset.page !== state.page
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.page === state.page) a.setAttribute('aria-current', 'page')
    else a.removeAttribute('aria-current')
  }
  document.title = `${state.page[0].toUpperCase()}${state.page.slice(1)} · meshmirror dashboard`
  if (state.page === 'problems') loadProblems()
  if (state.page === 'browse') browseFromHash()
  render()
}

// ---- header ----------------------------------------------------------------

function renderHeader(o) {
  const s = o.snapshot
  $('#site').textContent = `site ${shortSite(o.siteId)} · ${s.hostname}`
  const live = o.devices.filter((d) => d.present && (d.state === 'live' || d.state === 'syncing')).length
  $('#status').replaceChildren(
    h('span', { class: `badge ${s.phase === 'live' ? 'ok' : 'syncing'}` }, s.phase),
    ` ${live} linked · in ${s.sync.applyRate}/s · out ${s.sync.pushRate}/s · lag ${Math.round(s.sync.lagMs)} ms`,
  )
  const n = o.tables.reduce(
    (sum, t) => sum + t.problems.parked + t.problems.refused + t.problems.rejected + t.problems.conflict,
    0,
  )
  $('#problem-count').textContent = n > 0 ? String(n) : ''
  $('#problem-count').setAttribute('aria-label', `${n} problems`)
  renderWarnings(s.warnings ?? [])
}

/** What deserves attention (the snapshot's warnings), above every page; redrawn only when they change. */
function renderWarnings(warnings) {
  const key = warnings.join('\n')
  if (key === state.warnings) return
  state.warnings = key
  const box = $('#warnings')
  box.hidden = warnings.length === 0
  box.replaceChildren(...warnings.map((w) => h('p', {}, h('span', { class: 'badge warn' }, 'warning'), ' ', w)))
}

// ---- mesh ------------------------------------------------------------------

function stateClass(d) {
  if (!d.present) return 'gone'
  if (d.state === 'live' || d.state === 'syncing') return 'live'
  return 'connecting'
}

function renderMesh(o) {
  const devices = o.devices
  // Drawn at the size it is shown, so labels keep their size on a phone and on a desktop.
  const w = Math.max(300, Math.min($('#mesh-graph').clientWidth || 640, 1000))
  const hgt = devices.length > 6 ? 340 : devices.length > 2 ? 260 : 180
  const cx = w / 2
  const cy = hgt / 2 - 10
  const rx = Math.min(w / 2 - 70, 300)
  const ry = hgt / 2 - 60
  const svg = h('svg:svg', {
    viewBox: `0 0 ${w} ${hgt}`,
    role: 'img',
    'aria-label': `This device linked to ${devices.filter((d) => d.present).length} devices; ${devices.filter((d) => !d.present).length} gone`,
  })
  const nodes = []
  devices.forEach((d, i) => {
    const a = (2 * Math.PI * i) / devices.length
    const x = cx + rx * Math.cos(a)
    const y = cy + ry * Math.sin(a)
    const cls = stateClass(d)
    svg.append(h('svg:line', { x1: cx, y1: cy, x2: x, y2: y, class: cls }))
    nodes.push(
      h(
        'svg:g',
        { class: `node ${cls}` },
        h('svg:circle', { cx: x, cy: y, r: 16 }),
        h('svg:text', { x, y: y + 32, 'text-anchor': 'middle' }, shortSite(d.site ?? d.remote)),
        h(
          'svg:text',
          { x, y: y + 46, 'text-anchor': 'middle', class: 'muted' },
          d.present ? d.state : `gone · ${ago(d.lastSeen)}`,
        ),
      ),
    )
  })
  svg.append(...nodes)
  svg.append(
    h(
      'svg:g',
      { class: 'self' },
      h('svg:circle', { cx, cy, r: 22 }),
      h('svg:text', { x: cx, y: cy + 40, 'text-anchor': 'middle' }, 'this device'),
    ),
  )
  if (devices.length === 0) {
    svg.append(h('svg:text', { x: cx, y: 30, 'text-anchor': 'middle' }, 'no other device linked yet'))
  }
  $('#mesh-graph').replaceChildren(svg)

  const s = o.snapshot
  const rows = devices.map((d) =>
    h(
      'tr',
      {},
      h('td', { 'data-label': 'Device' }, h('span', { class: 'mono' }, d.site ?? '?')),
      h('td', { 'data-label': 'State' }, h('span', { class: `badge ${stateClass(d)}` }, d.present ? d.state : 'gone')),
      h(
        'td',
        { 'data-label': 'Transport' },
        [d.transport, d.security ? ` (${d.security})` : '', d.direction === 'ditto' ? '' : ` ${d.direction}`].join(''),
      ),
      h('td', { 'data-label': 'Address' }, h('span', { class: 'mono' }, d.remote)),
      h('td', { 'data-label': 'Lag' }, d.lag === undefined ? '–' : `${d.lag} changes`),
      h('td', { 'data-label': 'Sent / received' }, `${d.changesSent} / ${d.changesReceived}`),
      h('td', { 'data-label': 'Last seen' }, d.present ? 'now' : ago(d.lastSeen)),
      h('td', { 'data-label': 'Last error' }, d.lastError ?? '–'),
    ),
  )
  $('#mesh-devices').replaceChildren(
    h(
      'div',
      { class: 'panel' },
      h('h2', {}, 'Devices'),
      h(
        'p',
        { class: 'muted' },
        `This device: site `,
        h('span', { class: 'mono' }, o.siteId),
        ` · ${o.backend} mesh ${s.meshId}${s.listen ? ` · listening on ${s.listen.host}:${s.listen.port}` : ''}`,
      ),
      devices.length === 0
        ? h('p', { class: 'empty' }, 'No device has linked to this one yet.')
        : h(
            'div',
            { class: 'scroll' },
            h(
              'table',
              { class: 'stack' },
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  ['Device', 'State', 'Transport', 'Address', 'Lag', 'Sent / received', 'Last seen', 'Last error'].map(
                    (t) => h('th', { scope: 'col' }, t),
                  ),
                ),
              ),
              h('tbody', {}, rows),
            ),
          ),
      s.lastError ? h('p', {}, h('span', { class: 'badge error' }, 'last error'), ' ', s.lastError) : null,
    ),
  )
}

// ---- tables ----------------------------------------------------------------

function chart(points, keys, label) {
  const w = 300
  const hgt = 56
  const max = Math.max(1, ...points.flatMap((p) => keys.map((k) => p[k])))
  const t0 = points.length ? points[0].t : 0
  const t1 = points.length ? points[points.length - 1].t : 1
  const span = Math.max(1, t1 - t0)
  const svg = h('svg:svg', { viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' })
  for (const k of keys) {
    const pts = points.map(
      (p) => `${(((p.t - t0) / span) * w).toFixed(1)},${(hgt - 3 - (p[k] / max) * (hgt - 8)).toFixed(1)}`,
    )
    if (pts.length > 1)
      svg.append(h('svg:polyline', { points: pts.join(' '), class: k, 'vector-effect': 'non-scaling-stroke' }))
  }
  const last = points[points.length - 1]
  return h(
    'figure',
    {
      class: 'chart',
      role: 'img',
      'aria-label': `${label}: ${keys.map((k) => `${k} ${last ? last[k] : 0}`).join(', ')}`,
    },
    svg,
    h(
      'figcaption',
      {},
      h('span', {}, label),
      ...keys.map((k) => h('span', { class: `key-${k}` }, `${k} ${last ? last[k] : 0}${k === 'lag' ? ' ms' : '/s'}`)),
      h('span', {}, `max ${Math.round(max * 10) / 10}`),
      points.length > 1 ? h('span', {}, `last ${Math.max(1, Math.round(span / 60_000))} min`) : null,
    ),
  )
}

function renderTables(o) {
  const progress = o.snapshot.progress
  const cards = o.tables.map((t) => {
    const p = t.problems
    const stat = (n, label) => h('div', { class: 'stat' }, h('b', {}, n), h('span', {}, label))
    const bar = t.progress ?? (progress && !progress.model && o.snapshot.phase !== 'live' ? progress : undefined)
    return h(
      'article',
      { class: 'card', 'aria-labelledby': `t-${t.table}` },
      h('h2', { id: `t-${t.table}` }, t.table, ' ', h('span', { class: 'muted' }, `→ ${t.collection}`)),
      h('div', { class: 'muted' }, `${t.direction} · key ${t.keyColumns.join(', ') || 'rowid'}`),
      h(
        'div',
        { class: 'stats' },
        stat(t.rows, 'rows'),
        stat(t.documents, 'documents'),
        stat(p.refused, 'refused'),
        stat(p.parked, 'parked'),
        stat(p.rejected, 'rejected'),
        stat(p.conflict, 'conflicts'),
      ),
      bar
        ? h(
            'label',
            {},
            `${bar.phase} ${bar.done}${bar.total ? ` / ${bar.total}` : ''}`,
            h('progress', { max: bar.total ?? '', value: bar.total ? bar.done : '' }),
          )
        : null,
      chart(t.series, ['in', 'out'], 'rows per second'),
      chart(t.series, ['lag'], 'lag'),
    )
  })
  $('#tables').replaceChildren(...cards)
}

// ---- problems --------------------------------------------------------------

let problemsTimer = 0
async function loadProblems() {
  const form = $('#problem-filter')
  const params = new URLSearchParams()
  for (const k of ['kind', 'table', 'q']) if (form.elements[k].value) params.set(k, form.elements[k].value)
  let list
  try {
    list = await getJson(`/api/problems?${params}`)
  } catch (error) {
    $('#problems').replaceChildren(h('p', { class: 'empty' }, `Cannot read the problems: ${error.message}`))
    return
  }
  if (list.length === 0) {
    $('#problems').replaceChildren(h('p', { class: 'empty' }, 'No problem matches.'))
    return
  }
  $('#problems').replaceChildren(
    h('p', { class: 'muted' }, `${list.length} shown`),
    h(
      'ul',
      { class: 'list' },
      list.map((p) =>
        h(
          'li',
          { class: 'problem' },
          h(
            'div',
            { class: 'head' },
            h('span', { class: `badge ${p.kind}` }, p.kind),
            h('b', {}, p.table ?? p.collection ?? '?'),
            p.table
              ? h('a', { href: `#browse?table=${encodeURIComponent(p.table)}&id=${encodeURIComponent(p.id)}` }, p.id)
              : h('span', { class: 'mono' }, p.id),
            p.code ? h('code', {}, p.code) : null,
            h('span', { class: 'muted' }, new Date(p.at).toLocaleString()),
          ),
          h('p', {}, p.reason),
        ),
      ),
    ),
  )
}

function problemsSoon() {
  clearTimeout(problemsTimer)
  problemsTimer = setTimeout(loadProblems, 300)
}

// ---- browse ----------------------------------------------------------------

function fillTables(o) {
  for (const select of [$('#browse-form').elements.table, $('#problem-filter').elements.table]) {
    const have = [...select.options].map((x) => x.value)
    for (const t of o.tables) if (!have.includes(t.table)) select.append(h('option', { value: t.table }, t.table))
  }
}

async function search(event) {
  event?.preventDefault()
  const form = $('#browse-form')
  const table = form.elements.table.value
  const q = form.elements.q.value
  let found
  try {
    found = await getJson(`/api/search?table=${encodeURIComponent(table)}&q=${encodeURIComponent(q)}`)
  } catch (error) {
    $('#results').replaceChildren(h('p', { class: 'empty' }, `Cannot search: ${error.message}`))
    return
  }
  const cols = (state.overview?.tables.find((t) => t.table === table)?.columns ?? []).slice(0, 4)
  $('#results').replaceChildren(
    found.length === 0
      ? h('p', { class: 'empty' }, 'No row matches.')
      : h(
          'ul',
          { class: 'list results', 'aria-label': 'Matching rows' },
          found.map((r) =>
            h(
              'li',
              {},
              h(
                'button',
                {
                  type: 'button',
                  'aria-pressed': String(state.selected?.id === r.rowId),
                  onclick: () => openRow(table, r.rowId),
                },
                h('b', { class: 'mono' }, r.rowId),
                ' ',
                h('span', { class: 'muted' }, cols.map((c) => `${c}: ${JSON.stringify(r.row[c])}`).join(' · ')),
              ),
            ),
          ),
        ),
  )
}

function browseFromHash() {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '')
  const table = params.get('table')
  const id = params.get('id')
  if (table && id) {
    $('#browse-form').elements.table.value = table
    $('#browse-form').elements.q.value = id
    void openRow(table, id)
  }
}

function openRow(table, id) {
  state.selected = { table, id }
  const hash = `#browse?table=${encodeURIComponent(table)}&id=${encodeURIComponent(id)}`
  if (location.hash !== hash) history.replaceState(null, '', hash)
  for (const b of document.querySelectorAll('.results button')) {
    b.setAttribute('aria-pressed', String(b.querySelector('b')?.textContent === id))
  }
  return loadRow(true)
}

async function loadRow(focus) {
  const sel = state.selected
  if (!sel) return
  let v
  try {
    v = await getJson(`/api/row?table=${encodeURIComponent(sel.table)}&id=${encodeURIComponent(sel.id)}`)
  } catch (error) {
    $('#row').replaceChildren(h('p', { class: 'empty' }, `${sel.table} ${sel.id}: ${error.message}`))
    return
  }
  if (state.selected !== sel) return
  $('#row').replaceChildren(renderRow(v))
  if (focus) $('#row h2')?.focus()
}

function renderRow(v) {
  const fields = v.fields?.fields ?? []
  const byField = new Map(fields.map((f) => [f.field, f]))
  const names = [
    ...new Set([
      ...Object.keys(v.row ?? {}),
      ...Object.keys(v.doc ?? {}).filter((k) => k !== '_id'),
      ...byField.keys(),
    ]),
  ]
  const self = state.overview?.siteId
  const keys = state.overview?.tables.find((t) => t.table === v.table)?.keyColumns ?? []
  const created = v.fields?.created
  const writer = (site) =>
    h(
      'span',
      { class: site === self ? 'writer-self' : 'writer-other' },
      site === self ? 'this device' : shortSite(site),
    )
  const fieldRows = names.map((name) => {
    const f = byField.get(name)
    const rowValue = v.row ? v.row[name] : undefined
    // A single-column key is the document's _id, not one of its fields.
    const isKey = keys.length === 1 && keys[0] === name && !(v.doc && name in v.doc)
    const docValue = v.doc ? (isKey ? v.doc._id : v.doc[name]) : undefined
    const differs = v.row && v.doc && name in v.doc && JSON.stringify(rowValue) !== JSON.stringify(docValue)
    return h(
      'tr',
      { 'data-field': name },
      h('th', { scope: 'row', 'data-label': 'Field' }, h('span', { class: 'mono' }, name)),
      h('td', { 'data-label': 'Row' }, v.row ? show(rowValue) : h('span', { class: 'empty' }, 'no row')),
      h(
        'td',
        { 'data-label': 'Document', class: differs ? 'differs' : '' },
        v.doc ? show(docValue) : h('span', { class: 'empty' }, '–'),
      ),
      h(
        'td',
        { 'data-label': 'Written by', class: 'writer' },
        f
          ? writer(f.site)
          : isKey && created
            ? [writer(created.site), h('span', { class: 'muted' }, ' (created)')]
            : '–',
      ),
      h('td', { 'data-label': 'When' }, f ? when(f.writtenAt) : isKey && created ? when(created.writtenAt) : '–'),
      h(
        'td',
        { 'data-label': 'Clock' },
        f ? h('span', { class: 'mono', title: f.clock }, f.clock.slice(0, 13)) : '–',
        f?.increments?.length
          ? h(
              'div',
              { class: 'muted' },
              `counter: ${f.increments.map((i) => `${shortSite(i.site)} +${i.total}`).join(', ')}`,
            )
          : null,
      ),
    )
  })
  const history = v.history ?? []
  return h(
    'div',
    { class: 'row-view' },
    h(
      'div',
      { class: 'panel' },
      h('h2', { tabindex: '-1' }, `${v.table} `, h('span', { class: 'mono' }, v.rowId)),
      h(
        'p',
        { class: 'muted' },
        `document `,
        h('span', { class: 'mono' }, v.docId),
        v.fields
          ? ` · created by ${deviceName(v.fields.created.site)} ${when(v.fields.created.writtenAt)} · last written by ${deviceName(v.fields.written.site)} ${when(v.fields.written.writtenAt)}${v.fields.live ? '' : ' · removed'}`
          : '',
      ),
      v.fields
        ? null
        : h(
            'p',
            { class: 'empty' },
            'This mesh (Ditto) keeps no per-field clocks: which device wrote a field is not available.',
          ),
      v.row ? null : h('p', {}, h('span', { class: 'badge refused' }, 'not in the database')),
      h(
        'div',
        { class: 'scroll' },
        h(
          'table',
          { class: 'stack', 'aria-label': 'Fields: row value, mesh value, and the write it comes from' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Field', 'Row', 'Document', 'Written by', 'When', 'Clock'].map((t) => h('th', { scope: 'col' }, t)),
            ),
          ),
          h('tbody', {}, fieldRows),
        ),
      ),
    ),
    v.kept
      ? h(
          'div',
          { class: 'panel' },
          h('h3', {}, h('span', { class: `badge ${v.kept.kind}` }, v.kept.kind), ' kept, not applied'),
          h('p', {}, v.kept.reason, v.kept.code ? [' ', h('code', {}, v.kept.code)] : null),
        )
      : null,
    h(
      'div',
      { class: 'panel' },
      h('h3', {}, 'Outbox (local writes not yet sent)'),
      v.outbox.length === 0
        ? h('p', { class: 'empty' }, 'Nothing waiting: every local write of this row was sent.')
        : h(
            'ul',
            {},
            v.outbox.map((e) => h('li', {}, `#${e.seq} ${e.op} · captured ${new Date(e.at).toLocaleString()}`)),
          ),
      h('h3', {}, 'Recent history (since the dashboard started)'),
      history.length === 0
        ? h('p', { class: 'empty' }, 'No change of this document seen yet.')
        : h(
            'ol',
            { class: 'history' },
            history.map((e) =>
              h(
                'li',
                {},
                h('span', { class: 'muted' }, new Date(e.at).toLocaleTimeString()),
                ' ',
                e.kind === 'mesh-write'
                  ? [
                      e.site === undefined
                        ? 'changed in the mesh (its writer is not known here)'
                        : e.local
                          ? 'sent from this device'
                          : ['received: written by ', writer(e.site)],
                      e.fields?.length ? ` · ${e.fields.join(', ')}` : '',
                    ]
                  : e.kind === 'removed'
                    ? ['removed', e.site ? [' by ', writer(e.site)] : '']
                    : [h('span', { class: `badge ${e.kind}` }, e.kind), ' ', e.reason ?? ''],
              ),
            ),
          ),
    ),
  )
}

// ---- live updates ----------------------------------------------------------

function render() {
  const o = state.overview
  if (!o) return
  renderHeader(o)
  fillTables(o)
  if (state.page === 'mesh') renderMesh(o)
  if (state.page === 'tables') renderTables(o)
}

function connect() {
  const events = new EventSource('/api/events')
  events.addEventListener('overview', (e) => {
    state.overview = JSON.parse(e.data)
    document.body.dataset.updated = state.overview.snapshot.updatedAt
    render()
    if (state.page === 'browse' && state.selected && Date.now() - state.rowTimer > 2000) {
      state.rowTimer = Date.now()
      void loadRow(false)
    }
  })
  events.addEventListener('problem', () => {
    if (state.page === 'problems') problemsSoon()
  })
  events.addEventListener('error', () => {
    $('#status').replaceChildren(h('span', { class: 'badge error' }, 'disconnected'), ' reconnecting…')
  })
}

$('#browse-form').addEventListener('submit', search)
$('#problem-filter').addEventListener('input', problemsSoon)
$('#problem-filter').addEventListener('submit', (e) => e.preventDefault())
window.addEventListener('hashchange', route)
route()
connect()
