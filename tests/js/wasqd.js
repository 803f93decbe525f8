// Starts a real wasqd on OS-chosen loopback ports for a test, and reads
// its /stats. Certificates for TLS tests come fresh from wasq-test-certs.
'use strict'

const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..', '..')
const binary = process.env.WASQD_BIN || path.join(root, 'target', 'debug', 'wasqd')
const certsBinary = process.env.WASQ_TEST_CERTS_BIN ||
  path.join(path.dirname(binary), 'wasq-test-certs')

// Scratch directories, removed when the test process exits (and a
// wasqd's as soon as it exits), so runs leave nothing in the temp dir.
const scratch = new Set()
process.on('exit', () => scratch.forEach(removeScratch))

function makeScratch (prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  scratch.add(dir)
  return dir
}

function removeScratch (dir) {
  fs.rmSync(dir, { recursive: true, force: true })
  scratch.delete(dir)
}

function startWasqd (args = []) {
  return new Promise((resolve, reject) => {
    // A scratch working directory: no plugins, nothing written in the repository.
    const cwd = makeScratch('wasq-js-')
    // wasqd writes its bound addresses here once it serves (log lines are
    // for people and may be reworded).
    const readyFile = path.join(cwd, '.ready.json')
    const child = spawn(binary, ['--tcp-address', '127.0.0.1:0', '--http-address', '127.0.0.1:0',
      '--https-address', '127.0.0.1:0', '--exit-on-stdin-eof', '--ready-file', readyFile,
      '--lookupd-embedded-tcp-address', '127.0.0.1:0', '--lookupd-embedded-http-address', '127.0.0.1:0',
      ...args], {
      cwd,
      stdio: ['pipe', 'ignore', 'pipe']
    })
    let log = ''
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', chunk => { log += chunk })
    child.on('exit', code => {
      removeScratch(cwd)
      reject(new Error(`wasqd exited (${code}): ${log}`))
    })
    const started = Date.now()
    const poll = setInterval(() => {
      if (fs.existsSync(readyFile)) {
        clearInterval(poll)
        const listening = JSON.parse(fs.readFileSync(readyFile, 'utf8'))
        resolve({
          child,
          tcp: listening.tcp,
          http: listening.http,
          lookupdTcp: listening.lookupd_tcp,
          lookupdHttp: listening.lookupd_http,
          stop () {
            child.stdin.end()
            child.kill()
          }
        })
      } else if (Date.now() - started > 60000) {
        clearInterval(poll)
        reject(new Error('wasqd did not start: ' + log))
      }
    }, 10)
  })
}

async function stats (http) {
  const response = await fetch(`http://${http}/stats?format=json`)
  return response.json()
}

async function channelStats (http, topic, channel) {
  const s = await stats(http)
  const t = (s.topics || []).find(t => t.topic_name === topic)
  return t && t.channels.find(c => c.channel_name === channel)
}

// Writes ca.pem, server.pem/.key and client.pem/.key into a new directory.
function makeCertificates () {
  const dir = makeScratch('wasq-js-certs-')
  execFileSync(certsBinary, [dir])
  const read = name => fs.readFileSync(path.join(dir, name))
  return {
    flags: ['--tls-cert', path.join(dir, 'server.pem'), '--tls-key', path.join(dir, 'server.key'),
      '--tls-root-ca-file', path.join(dir, 'ca.pem')],
    ca: read('ca.pem'),
    cert: read('client.pem'),
    key: read('client.key')
  }
}

module.exports = { startWasqd, stats, channelStats, makeCertificates }
