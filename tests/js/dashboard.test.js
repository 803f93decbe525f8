// The dashboard at GET / in a real browser: Debian's Chromium, headless,
// driven by playwright-core. The test publishes and watches the page: a new
// topic appears, then a plugin's counters change, with no reload.
'use strict'

const { test } = require('node:test')
const assert = require('node:assert')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { chromium } = require('playwright-core')
const { startWasqd } = require('./wasqd')

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'

// A plugin that finishes every message (ABI v1, in WebAssembly text).
const FIN_PLUGIN = `(module
  (memory (export "memory") 1)
  (func (export "wasq_abi_version") (result i32) (i32.const 1))
  (func (export "wasq_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wasq_handle") (param i32 i32) (result i64) (i64.const 0)))
`

// A plugin that counts its messages in its state under the key "hits".
const TALLY_PLUGIN = `(module
  (import "wasq" "state_increment" (func $increment (param i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hits")
  (func (export "wasq_abi_version") (result i32) (i32.const 1))
  (func (export "wasq_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "wasq_handle") (param i32 i32) (result i64)
    (drop (call $increment (i32.const 16) (i32.const 4) (i64.const 1) (i32.const 32)))
    (i64.const 0)))
`

async function publish (http, topic, body) {
  const response = await fetch(`http://${http}/pub?topic=${topic}`, { method: 'POST', body })
  assert.strictEqual(response.status, 200, await response.text())
}

async function pluginRunning (http, name) {
  const deadline = Date.now() + 60000
  while (Date.now() < deadline) {
    const { plugins } = await (await fetch(`http://${http}/plugins`)).json()
    if (plugins.some(p => p.name === name && p.state === 'running')) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`plugin ${name} did not start`)
}

test('the dashboard shows a new topic and a plugin\'s counters live', { timeout: 120000 }, async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: scripts/test installs Debian's chromium (apt-get install chromium)`)
  const plugins = fs.mkdtempSync(path.join(os.tmpdir(), 'wasq-dashboard-'))
  fs.writeFileSync(path.join(plugins, 'fin.wat'), FIN_PLUGIN)
  fs.writeFileSync(path.join(plugins, 'fin.toml'), 'topic = "dash_work"\nchannel = "plugin"\n')
  fs.writeFileSync(path.join(plugins, 'tally.wat'), TALLY_PLUGIN)
  fs.writeFileSync(path.join(plugins, 'tally.toml'), 'topic = "dash_tally"\nstate = true\n')
  const wasqd = await startWasqd(['--plugins-dir', plugins])
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // This machine has no network beyond localhost: keep Chromium from
    // calling home (refused connections, lookups that fail at start).
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  try {
    await pluginRunning(wasqd.http, 'fin')
    const page = await browser.newPage()
    const errors = []
    page.on('pageerror', error => errors.push(error.message))
    await page.goto(`http://${wasqd.http}/`)
    await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('updated'))
    const handled = page.locator('tr[data-plugin="fin"] td[data-field="handled"]')
    assert.strictEqual(await handled.textContent(), '0')
    assert.strictEqual(await page.locator('tr[data-plugin="fin"] td[data-field="state"]').textContent(), 'running')

    // A topic published to after the page loaded shows up, with its count.
    await publish(wasqd.http, 'dash_new', 'hello')
    const newTopic = page.locator('tr.topic[data-topic="dash_new"]')
    await newTopic.waitFor({ timeout: 30000 })
    await page.waitForFunction(
      () => document.querySelector('tr.topic[data-topic="dash_new"] td[data-field="messages"]').textContent === '1',
      null, { timeout: 30000 })

    // The plugin's counters follow its work.
    for (const body of ['a', 'b', 'c']) await publish(wasqd.http, 'dash_work', body)
    await page.waitForFunction(
      () => document.querySelector('tr[data-plugin="fin"] td[data-field="handled"]').textContent === '3',
      null, { timeout: 30000 })
    assert.strictEqual(await page.locator('tr[data-plugin="fin"] td[data-field="finished"]').textContent(), '3')
    const channel = page.locator('tr.channel[data-topic="dash_work"][data-channel="plugin"] td[data-field="clients"]')
    assert.strictEqual(await channel.textContent(), '1')
    // The plugin is listed among the clients, subscribed to its channel.
    const client = page.locator('#clients td[data-field="user_agent"]', { hasText: 'wasq-plugin/fin' })
    assert.strictEqual(await client.count(), 1)

    // A plugin's state: its keys, size and commits.
    await pluginRunning(wasqd.http, 'tally')
    for (const body of ['x', 'y']) await publish(wasqd.http, 'dash_tally', body)
    await page.waitForFunction(
      () => {
        const line = document.querySelector('tr[data-plugin-detail="tally"] [data-field="state_store"]')
        return line !== null && line.textContent.includes('2 commits')
      },
      null, { timeout: 30000 })
    const stateLine = await page.locator('tr[data-plugin-detail="tally"] [data-field="state_store"]').textContent()
    assert.ok(stateLine.startsWith('State: 1 keys · 5 B of 64.0 MiB'), stateLine)

    assert.deepStrictEqual(errors, [], 'the page ran without script errors')

    if (process.env.DASHBOARD_SCREENSHOT) {
      await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT, fullPage: true })
    }
  } finally {
    await browser.close()
    wasqd.stop()
    fs.rmSync(plugins, { recursive: true, force: true })
  }
})

test('given lookupds, the dashboard shows every node, each row with its node, and a hung one as unreachable', { timeout: 120000 }, async () => {
  // The first node's embedded lookupd is the cluster's; the others register
  // with it, and the second node's dashboard asks it for the cluster.
  const first = await startWasqd(['--broadcast-address', '127.0.0.1'])
  const cluster = ['--no-embedded-lookupd', '--lookupd-tcp-address', first.lookupdTcp, '--broadcast-address', '127.0.0.1']
  const second = await startWasqd([...cluster, '--lookupd-http-address', first.lookupdHttp])
  const third = await startWasqd(cluster)
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  try {
    await publish(first.http, 'dash_first', 'a')
    await publish(third.http, 'dash_third', 'b')
    const page = await browser.newPage()
    const errors = []
    page.on('pageerror', error => errors.push(error.message))
    await page.goto(`http://${second.http}/`)
    const thirdTopic = page.locator(`tr.topic[data-node="${third.http}"][data-topic="dash_third"]`)
    await thirdTopic.waitFor({ timeout: 60000 })
    assert.strictEqual(await thirdTopic.locator('td[data-field="node"]').textContent(), third.http)
    assert.ok(await thirdTopic.locator('td[data-field="node"]').isVisible(), 'the node column shows')
    await page.locator(`tr.topic[data-node="${first.http}"][data-topic="dash_first"]`).waitFor({ timeout: 30000 })
    await page.waitForFunction(
      () => document.querySelector('[data-card="nodes"] .value').textContent === '3 of 3',
      null, { timeout: 30000 })

    // A hung node stays registered with lookupd: the page names it as
    // unreachable, and shows it again once it answers.
    third.child.kill('SIGSTOP')
    await page.waitForFunction(() => document.querySelector('[data-card="nodes"] .value').textContent === '2 of 3',
      null, { timeout: 30000 })
    const status = await page.locator('#status').textContent()
    assert.ok(status.includes(`${third.http} unreachable`), status)
    third.child.kill('SIGCONT')
    await page.waitForFunction(() => document.querySelector('[data-card="nodes"] .value').textContent === '3 of 3',
      null, { timeout: 30000 })

    // A node that stops unregisters: its rows go.
    third.stop()
    await page.waitForFunction(() => document.querySelector('[data-card="nodes"] .value').textContent === '2 of 2',
      null, { timeout: 30000 })
    assert.strictEqual(await page.locator(`tr[data-node="${third.http}"]`).count(), 0)
    assert.deepStrictEqual(errors, [], 'the page ran without script errors')
  } finally {
    await browser.close()
    for (const node of [first, second, third]) node.stop()
  }
})
