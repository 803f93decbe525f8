// The Wasq dashboard: polls /stats (which carries the plugins too) every
// second and redraws. Rates are the change of a message count between two
// polls. Names come from clients and plugins, so every value is set as text,
// never as HTML.
//
// Given --lookupd-http-address, wasqd's /cluster lists every node those
// lookupds know with its /stats: the page then shows them all, each row
// with its node (the cluster view, as nsqadmin's).
'use strict'

const POLL_MS = 1000
const previous = { at: 0, counts: new Map() }
const cluster = { on: false, first: null }

function el (tag, attributes = {}, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'class') node.className = value
    else node.setAttribute(key, value)
  }
  for (const child of children) {
    if (child === null || child === undefined) continue
    node.append(child instanceof Node ? child : String(child))
  }
  return node
}

function cell (value, field, extraClass) {
  const attributes = field ? { 'data-field': field } : {}
  if (extraClass) attributes.class = extraClass
  return el('td', attributes, value)
}

function number (n) {
  return Number(n).toLocaleString('en-US')
}

function duration (nanos) {
  if (nanos >= 1e9) return (nanos / 1e9).toFixed(2) + ' s'
  if (nanos >= 1e6) return (nanos / 1e6).toFixed(2) + ' ms'
  return (nanos / 1e3).toFixed(1) + ' µs'
}

// Bytes as B, KiB, MiB or GiB.
function size (n) {
  const units = ['B', 'KiB', 'MiB', 'GiB']
  let unit = 0
  while (n >= 1024 && unit < units.length - 1) { n /= 1024; unit++ }
  return `${unit ? n.toFixed(1) : n} ${units[unit]}`
}

function micros (us) {
  return us >= 1000 ? (us / 1000).toFixed(2) + ' ms' : us + ' µs'
}

function since (unixSeconds) {
  let s = Math.max(0, Math.floor(Date.now() / 1000 - unixSeconds))
  const parts = []
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]]) {
    if (s >= size) { parts.push(Math.floor(s / size) + unit); s %= size }
  }
  parts.push(s + 's')
  return parts.slice(0, 2).join(' ')
}

// Messages per second of the counter `key` since the last poll.
function rate (key, count, now, seen) {
  seen.set(key, count)
  const before = previous.counts.get(key)
  if (before === undefined || previous.at === 0 || count < before) return '–'
  const seconds = (now - previous.at) / 1000
  return seconds > 0 ? ((count - before) / seconds).toFixed(1) : '–'
}

function latency (block) {
  if (!block || !block.count) return '–'
  const percentiles = block.percentiles || []
  return percentiles.map(p => `p${+(p.quantile * 100).toFixed(2)} ${duration(p.value)}`).join(', ')
}

function replaceRows (table, rows) {
  const body = document.querySelector(`#${table} tbody`)
  body.replaceChildren(...rows)
  document.getElementById(`no-${table}`).hidden = rows.length > 0
}

function card (label, value, id) {
  return el('div', { class: 'card', 'data-card': id }, el('div', { class: 'value' }, value), el('div', { class: 'label' }, label))
}

// A topic's or channel's name, with a badge while it is paused.
function nameMaybePaused (name, paused) {
  return el('span', {}, name, paused ? ' ' : null, paused ? el('span', { class: 'badge paused' }, 'paused') : null)
}

// The node column's cell (hidden unless the page shows a cluster).
function nodeCell (node) {
  return cell(node, 'node', 'text node-col')
}

function drawTopics (views, now, seen) {
  const rows = []
  for (const { node, stats } of views) for (const topic of stats.topics || []) {
    const inFlight = topic.channels.reduce((sum, c) => sum + c.in_flight_count, 0)
    rows.push(el('tr', { class: 'topic', 'data-node': node, 'data-topic': topic.topic_name },
      nodeCell(node),
      cell(nameMaybePaused(topic.topic_name, topic.paused), 'name'),
      cell(number(topic.depth), 'depth'),
      cell(number(topic.backend_depth), 'backend_depth'),
      cell(number(inFlight), 'in_flight'),
      cell('', 'deferred'), cell('', 'requeued'), cell('', 'timed_out'),
      cell(number(topic.message_count), 'messages'),
      cell(rate(`${node}/t/${topic.topic_name}`, topic.message_count, now, seen), 'rate'),
      cell('', 'clients'),
      cell(latency(topic.e2e_processing_latency), 'latency')))
    for (const channel of topic.channels) {
      rows.push(el('tr', { class: 'channel', 'data-node': node, 'data-topic': topic.topic_name, 'data-channel': channel.channel_name },
        nodeCell(node),
        cell(nameMaybePaused(channel.channel_name, channel.paused), 'name'),
        cell(number(channel.depth), 'depth'),
        cell(number(channel.backend_depth), 'backend_depth'),
        cell(number(channel.in_flight_count), 'in_flight'),
        cell(number(channel.deferred_count), 'deferred'),
        cell(number(channel.requeue_count), 'requeued'),
        cell(number(channel.timeout_count), 'timed_out'),
        cell(number(channel.message_count), 'messages'),
        cell(rate(`${node}/c/${topic.topic_name}/${channel.channel_name}`, channel.message_count, now, seen), 'rate'),
        cell(number(channel.client_count), 'clients'),
        cell(latency(channel.e2e_processing_latency), 'latency')))
    }
  }
  replaceRows('topics', rows)
}

function drawPlugins (views, now, seen) {
  const rows = []
  for (const { node, stats } of views) for (const plugin of stats.plugins || []) {
    const c = plugin.counters
    const where = plugin.topic ? `${plugin.topic} / ${plugin.channel}` : '–'
    rows.push(el('tr', { class: 'plugin', 'data-node': node, 'data-plugin': plugin.name },
      nodeCell(node),
      cell(plugin.name, 'name'),
      cell(el('span', { class: `badge ${plugin.state}` }, plugin.state), 'state', 'text'),
      cell(where, 'subscription', 'text'),
      cell(number(plugin.instances), 'instances'),
      cell(number(c.handled), 'handled'),
      cell(rate(`${node}/p/${plugin.name}`, c.handled, now, seen), 'rate'),
      cell(number(c.finished), 'finished'),
      cell(number(c.requeued), 'requeued'),
      cell(number(c.dead_lettered), 'dead_lettered'),
      cell(number(c.traps), 'traps'),
      cell(number(c.timeouts), 'timeouts'),
      cell(number(c.published), 'published'),
      cell(`${micros(c.handler_time_us_p50)} / ${micros(c.handler_time_us_p99)}`, 'handler_time')))
    const details = []
    if (plugin.module_hash) {
      const load = plugin.load ? ` · loaded in ${plugin.load.load_ms} ms${plugin.load.from_cache ? ' from the cache' : ''}${plugin.load.compiler === 'baseline' ? ', on baseline code until its optimized code is compiled' : ''}` : ''
      details.push(el('div', { 'data-field': 'module' }, `${plugin.kind} ${plugin.module_hash.slice(0, 12)}${load} · ${plugin.file || ''}`))
    }
    const out = c.outbound
    if (out && out.requests > 0) {
      const classes = Object.entries(out.responses).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${number(n)}`)
      const errors = Object.entries(out.errors).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${number(n)}`)
      details.push(el('div', { 'data-field': 'outbound' },
        `Outbound HTTP: ${number(out.requests)} requests · ${classes.join(' · ') || 'no responses'}` +
        `${errors.length ? ' · errors: ' + errors.join(' · ') : ''}` +
        ` · ${micros(out.latency_us_p50)} / ${micros(out.latency_us_p99)}`))
    }
    const state = plugin.state_store
    if (state) {
      const refused = Object.entries(state.refused).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${number(n)}`)
      details.push(el('div', { 'data-field': 'state_store' },
        `State: ${number(state.keys)} keys · ${size(state.bytes)} of ${size(state.limit_bytes)}` +
        ` · ${number(state.committed)} commits · ${number(state.conflicts)} conflicts · ${number(state.replayed)} replayed` +
        `${refused.length ? ' · refused: ' + refused.join(' · ') : ''}`))
    }
    if (plugin.last_error) {
      details.push(el('div', { class: 'error', 'data-field': 'last_error' }, 'Last error: ', plugin.last_error))
    }
    if (plugin.history && plugin.history.length) {
      const items = plugin.history.slice(-5).reverse().map(record => {
        const when = new Date(record.time_ms).toLocaleTimeString()
        const hashes = `${(record.old_hash || '–').slice(0, 8)} → ${(record.new_hash || '–').slice(0, 8)}`
        const by = record.by ? ` by ${record.by}` : ''
        return el('li', {}, `${when} ${record.trigger}${by}: ${record.result} (${hashes})`)
      })
      details.push(el('div', {}, 'Reloads (latest first):', el('ul', { class: 'history', 'data-field': 'history' }, ...items)))
    }
    if (details.length) {
      rows.push(el('tr', { class: 'detail', 'data-node': node, 'data-plugin-detail': plugin.name },
        el('td', { class: 'node-col' }), el('td', { colspan: 13 }, ...details)))
    }
  }
  replaceRows('plugins', rows)
}

// nsqd's client states, as /stats numbers them.
const CLIENT_STATES = ['init', 'disconnected', 'connected', 'subscribed', 'closing']

function connection (client) {
  const parts = []
  if (client.tls) parts.push(client.tls_version || 'TLS')
  if (client.snappy) parts.push('snappy')
  if (client.deflate) parts.push('deflate')
  if (client.authed) parts.push('auth ' + (client.auth_identity || ''))
  return parts.join(', ') || 'plain'
}

function drawClients (views) {
  const rows = []
  const row = (node, client, subscription) => el('tr', { 'data-node': node, 'data-client': client.client_id },
    nodeCell(node),
    cell(client.client_id || client.hostname, 'id'),
    cell(client.remote_address, 'address', 'text'),
    cell(client.user_agent || '–', 'user_agent', 'text'),
    cell(subscription, 'subscription', 'text'),
    cell(CLIENT_STATES[client.state] || String(client.state), 'state', 'text'),
    cell(number(client.ready_count), 'ready'),
    cell(number(client.in_flight_count), 'in_flight'),
    cell(number(client.message_count), 'messages'),
    cell(number(client.finish_count), 'finished'),
    cell(number(client.requeue_count), 'requeued'),
    cell(connection(client), 'connection', 'text'),
    cell(since(client.connect_ts), 'connected'))
  for (const { node, stats } of views) {
    for (const topic of stats.topics || []) {
      for (const channel of topic.channels) {
        for (const client of channel.clients) rows.push(row(node, client, `${topic.topic_name} / ${channel.channel_name}`))
      }
    }
    for (const producer of stats.producers || []) {
      const topics = (producer.pub_counts || []).map(p => `${p.topic} (${number(p.count)})`).join(', ')
      rows.push(row(node, producer, topics ? 'publishes to ' + topics : 'producer'))
    }
  }
  replaceRows('clients', rows)
}

function drawSummary (views, down) {
  const topics = views.flatMap(v => v.stats.topics || [])
  const plugins = views.flatMap(v => v.stats.plugins || [])
  const channels = topics.flatMap(t => t.channels)
  const depth = topics.reduce((sum, t) => sum + t.depth, 0) + channels.reduce((sum, c) => sum + c.depth, 0)
  const inFlight = channels.reduce((sum, c) => sum + c.in_flight_count, 0)
  const running = plugins.filter(p => p.state === 'running').length
  const failed = plugins.filter(p => p.state === 'failed').length
  const nodes = cluster.on ? [card('nodes answering', `${views.length} of ${views.length + down.length}`, 'nodes')] : []
  document.getElementById('summary').replaceChildren(
    ...nodes,
    card('topics', number(topics.length), 'topics'),
    card('channels', number(channels.length), 'channels'),
    card('messages queued', number(depth), 'depth'),
    card('in flight', number(inFlight), 'in_flight'),
    card('plugins running', number(running), 'plugins_running'),
    card('plugins failed', number(failed), 'plugins_failed'))
}

// This node's stats, or every node's in the cluster view: the views that
// answered ({node, stats}) and the nodes that did not ({node, error}).
async function fetchViews () {
  if (!cluster.on) {
    const response = await fetch('/stats?format=json', { cache: 'no-store' })
    if (!response.ok) throw new Error(`HTTP ${response.status}`)
    return { views: [{ node: '', stats: await response.json() }], down: [] }
  }
  let answer = cluster.first
  cluster.first = null
  if (!answer) {
    const response = await fetch('/cluster', { cache: 'no-store' })
    if (!response.ok) throw new Error(`HTTP ${response.status}`)
    answer = await response.json()
  }
  if (answer.error) throw new Error(answer.error)
  const nodes = answer.nodes || []
  return { views: nodes.filter(n => n.stats), down: nodes.filter(n => !n.stats) }
}

async function poll () {
  const status = document.getElementById('status')
  try {
    const { views, down } = await fetchViews()
    const now = Date.now()
    const seen = new Map()
    drawSummary(views, down)
    drawTopics(views, now, seen)
    drawPlugins(views, now, seen)
    drawClients(views)
    previous.at = now
    previous.counts = seen
    const unreachable = down.map(d => `${d.node} unreachable (${d.error})`).join('; ')
    status.textContent = 'updated ' + new Date(now).toLocaleTimeString() + (unreachable ? ' · ' + unreachable : '')
    status.className = down.length ? 'status down' : 'status'
  } catch (error) {
    status.textContent = 'cannot reach wasqd: ' + error.message
    status.className = 'status down'
  } finally {
    setTimeout(poll, POLL_MS)
  }
}

// Whether this wasqd shows a cluster (it was given lookupds to ask). The
// answer already holds every node's stats: the first poll draws it.
async function findCluster () {
  try {
    const answer = await (await fetch('/cluster', { cache: 'no-store' })).json()
    cluster.on = (answer.lookupd || []).length > 0
    cluster.first = cluster.on ? answer : null
  } catch (error) {
    cluster.on = false
  }
  document.body.classList.toggle('cluster', cluster.on)
}

async function describeNode () {
  try {
    const info = await (await fetch('/info')).json()
    document.getElementById('node').textContent =
      `${info.broadcast_address} · TCP ${info.tcp_port} · HTTP ${info.http_port} · nsqd ${info.version} compatible · up since ${new Date(info.start_time * 1000).toLocaleString()}`
  } catch (error) {
    // The status line reports an unreachable broker.
  }
}

describeNode()
findCluster().then(poll)
