// nsqjs over TLS, snappy and deflate (alone and inside TLS), with a client
// certificate under --tls-client-auth-policy=require-verify, and with an
// auth secret against a small auth server run by the test.
'use strict'

const { test } = require('node:test')
const assert = require('node:assert')
const http = require('node:http')
const nsq = require('nsqjs')
const { startWasqd, channelStats, makeCertificates } = require('./wasqd')

// Publishes `count` bodies with a Writer and receives them all with a
// Reader, both with `options`; returns the channel's first client stats.
async function roundTrip (wasqd, topic, options, count = 20, size = 300) {
  const [host, port] = wasqd.tcp.split(':')
  const bodies = Array.from({ length: count }, (_, i) => `${topic} ${i} ` + 'x'.repeat(size))
  const writer = new nsq.Writer(host, Number(port), options)
  await new Promise((resolve, reject) => {
    writer.on('ready', resolve)
    writer.on('error', reject)
    writer.connect()
  })
  await new Promise((resolve, reject) =>
    writer.publish(topic, bodies, err => (err ? reject(err) : resolve())))
  writer.close()

  const seen = []
  const reader = new nsq.Reader(topic, 'c', { nsqdTCPAddresses: [wasqd.tcp], maxInFlight: 10, ...options })
  await new Promise((resolve, reject) => {
    reader.on('message', msg => {
      seen.push(msg.body.toString())
      msg.finish()
      if (seen.length === count) resolve()
    })
    reader.on('error', reject)
    reader.connect()
  })
  assert.deepStrictEqual([...seen].sort(), [...bodies].sort())
  const channel = await channelStats(wasqd.http, topic, 'c')
  reader.close()
  return channel.clients[0]
}

async function withWasqd (args, body) {
  const wasqd = await startWasqd(args)
  try {
    await body(wasqd)
  } finally {
    wasqd.stop()
  }
}

const certs = makeCertificates()
const tls = { tls: true, tlsVerification: true, ca: certs.ca }

test('TLS', { timeout: 30000 }, () => withWasqd(certs.flags, async wasqd => {
  const client = await roundTrip(wasqd, 'js_tls', tls)
  assert.strictEqual(client.tls, true)
}))

test('snappy', { timeout: 30000 }, () => withWasqd([], async wasqd => {
  const client = await roundTrip(wasqd, 'js_snappy', { snappy: true }, 5, 100000)
  assert.strictEqual(client.snappy, true)
}))

test('deflate', { timeout: 30000 }, () => withWasqd([], async wasqd => {
  const client = await roundTrip(wasqd, 'js_deflate', { deflate: true, deflateLevel: 6 }, 5, 100000)
  assert.strictEqual(client.deflate, true)
}))

test('TLS with snappy', { timeout: 30000 }, () => withWasqd(certs.flags, async wasqd => {
  const client = await roundTrip(wasqd, 'js_tls_snappy', { ...tls, snappy: true })
  assert.deepStrictEqual([client.tls, client.snappy], [true, true])
}))

test('TLS with deflate', { timeout: 30000 }, () => withWasqd(certs.flags, async wasqd => {
  const client = await roundTrip(wasqd, 'js_tls_deflate', { ...tls, deflate: true })
  assert.deepStrictEqual([client.tls, client.deflate], [true, true])
}))

test('a client certificate with require-verify', { timeout: 30000 }, () =>
  // tcp-https keeps plain HTTP open for the test's /stats reads.
  withWasqd([...certs.flags, '--tls-client-auth-policy', 'require-verify', '--tls-required=tcp-https'],
    async wasqd => {
      const client = await roundTrip(wasqd, 'js_mutual', { ...tls, cert: certs.cert, key: certs.key })
      assert.strictEqual(client.tls, true)
    }))

test('an auth secret', { timeout: 30000 }, async () => {
  const secrets = []
  const server = http.createServer((req, res) => {
    const secret = new URL(req.url, 'http://x').searchParams.get('secret')
    secrets.push(secret)
    const granted = secret === 'js-secret'
    res.writeHead(granted ? 200 : 403, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify(granted
      ? { ttl: 3600, identity: 'js', authorizations: [{ topic: '.*', channels: ['.*'], permissions: ['subscribe', 'publish'] }] }
      : {}))
  })
  await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
  try {
    await withWasqd(['--auth-http-address', `127.0.0.1:${server.address().port}`], async wasqd => {
      const client = await roundTrip(wasqd, 'js_auth', { authSecret: 'js-secret' })
      assert.strictEqual(client.authed, true)
      assert.strictEqual(client.auth_identity, 'js')
      assert.ok(secrets.length > 0 && secrets.every(s => s === 'js-secret'))
    })
  } finally {
    server.close()
  }
})
