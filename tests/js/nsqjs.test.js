// nsqjs (the Node.js NSQ client) against a real wasqd: Writer publishes,
// Reader receives, FINs, and REQs with attempts counted.
'use strict'

const { test } = require('node:test')
const assert = require('node:assert')
const nsq = require('nsqjs')
const { startWasqd, stats } = require('./wasqd')

test('nsqjs publishes, consumes, finishes and requeues', { timeout: 30000 }, async () => {
  const wasqd = await startWasqd()
  const [host, port] = wasqd.tcp.split(':')
  try {
    const writer = new nsq.Writer(host, Number(port))
    await new Promise((resolve, reject) => {
      writer.on('ready', resolve)
      writer.on('error', reject)
      writer.connect()
    })
    await new Promise((resolve, reject) =>
      writer.publish('js_t', ['one', 'two', 'retry'], err => (err ? reject(err) : resolve())))
    await new Promise((resolve, reject) =>
      writer.deferPublish('js_t', ['later'], 200, err => (err ? reject(err) : resolve())))
    writer.close()

    const seen = []
    const attempts = {}
    const reader = new nsq.Reader('js_t', 'c', { nsqdTCPAddresses: [wasqd.tcp], maxInFlight: 5 })
    await new Promise((resolve, reject) => {
      reader.on('message', msg => {
        const body = msg.body.toString()
        attempts[body] = msg.attempts
        if (body === 'retry' && msg.attempts === 1) {
          msg.requeue(0, false)
          return
        }
        seen.push(body)
        msg.finish()
        if (seen.length === 4) resolve()
      })
      reader.on('error', reject)
      reader.connect()
    })
    assert.deepStrictEqual([...seen].sort(), ['later', 'one', 'retry', 'two'])
    assert.strictEqual(attempts.retry, 2)
    assert.strictEqual(attempts.one, 1)

    let channel
    for (let i = 0; i < 100; i++) {
      const s = await stats(wasqd.http)
      channel = s.topics.find(t => t.topic_name === 'js_t').channels.find(c => c.channel_name === 'c')
      if (channel.in_flight_count === 0) break
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    assert.strictEqual(channel.in_flight_count, 0)
    assert.strictEqual(channel.requeue_count, 1)
    reader.close()
  } finally {
    wasqd.child.stdin.end()
    wasqd.child.kill()
  }
})
