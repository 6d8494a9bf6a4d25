// The pieces behind the zero-code entries and the proxy, tested alone: the environment,
// listen addresses, the Envoy import of listener and admin addresses, redaction.
import assert from 'node:assert/strict'
import https from 'node:https'
import { describe, it } from 'node:test'
import { createMesh, fromEnvoy, isMeshError, validateConfig } from '../src/index.js'
import { isLoopback, parseListenAddress } from '../src/config/listen-address.js'
import { redact } from '../src/admin/admin.js'
import { parseLabels, readEnvironment } from '../src/zerocode/environment.js'

describe('SIDECARLESS_* environment', () => {
  it('parses labels strictly', () => {
    assert.deepEqual(parseLabels(''), {})
    assert.deepEqual(parseLabels('version=v1,app.kubernetes.io/name=reviews,empty='), { version: 'v1', 'app.kubernetes.io/name': 'reviews', empty: '' })
    for (const bad of ['version', 'version=v1,', ' version=v1', 'version=v 1', 'a=1,a=2', '=v1', 'k=v=w', '-a=1', '__proto__=x']) {
      assert.throws(() => parseLabels(bad), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_ENVIRONMENT') && err.message.includes('SIDECARLESS_LABELS'), bad)
    }
  })

  it('reads the variables, with exit as the default on a bad config', () => {
    assert.deepEqual(readEnvironment({}), { config: undefined, service: undefined, labels: {}, onConfigError: 'exit' })
    assert.deepEqual(readEnvironment({ SIDECARLESS_CONFIG: 'm.yaml', SIDECARLESS_SERVICE: 'reviews', SIDECARLESS_LABELS: 'v=1', SIDECARLESS_ON_CONFIG_ERROR: 'continue' }), {
      config: 'm.yaml', service: 'reviews', labels: { v: '1' }, onConfigError: 'continue',
    })
    assert.throws(() => readEnvironment({ SIDECARLESS_ON_CONFIG_ERROR: 'EXIT' }), /SIDECARLESS_ON_CONFIG_ERROR is "EXIT"/)
    assert.throws(() => readEnvironment({ SIDECARLESS_SERVICE: 'two words' }), /SIDECARLESS_SERVICE is "two words"/)
  })

  it('reads SIDECARLESS_DRAIN_TIMEOUT and SIDECARLESS_DRAIN_DELAY as durations, refusing anything else', () => {
    assert.deepEqual(readEnvironment({ SIDECARLESS_DRAIN_TIMEOUT: '25s' }).drain, { timeout: '25s' })
    assert.deepEqual(readEnvironment({ SIDECARLESS_DRAIN_TIMEOUT: '1m', SIDECARLESS_DRAIN_DELAY: '5s' }).drain, { timeout: '1m', delay: '5s' })
    assert.equal(readEnvironment({ SIDECARLESS_DRAIN_DELAY: '' }).drain, undefined)
    for (const bad of ['30', '-1s', 'soon', '2h']) {
      assert.throws(() => readEnvironment({ SIDECARLESS_DRAIN_TIMEOUT: bad }), (err: unknown) => isMeshError(err, 'SIDECARLESS_ERR_ENVIRONMENT') && err.message.startsWith(`SIDECARLESS_DRAIN_TIMEOUT is "${bad}"`), bad)
    }
    assert.throws(() => readEnvironment({ SIDECARLESS_DRAIN_DELAY: '5' }), /SIDECARLESS_DRAIN_DELAY is "5"/)
  })
})

describe('listen addresses', () => {
  it('parses host:port with port 0 allowed, IPv6 in brackets', () => {
    assert.deepEqual(parseListenAddress('0.0.0.0:8080'), { host: '0.0.0.0', port: 8080 })
    assert.deepEqual(parseListenAddress('[::1]:0'), { host: '::1', port: 0 })
    assert.deepEqual(parseListenAddress('localhost:9901'), { host: 'localhost', port: 9901 })
    for (const bad of ['8080', ':8080', 'host:', 'host:65536', '::1:80', '[::1]80', 'http://h:1', 'a b:1', '[nope]:1']) {
      assert.equal(typeof parseListenAddress(bad), 'string', bad)
    }
  })

  it('knows loopback addresses', () => {
    assert.deepEqual(['127.0.0.1', '127.1.2.3', '::1', 'localhost', '0.0.0.0', '::', '10.0.0.1'].map(isLoopback), [true, true, true, true, false, false, false])
  })

  it('validates listener.address and admin.address', () => {
    assert.deepEqual(validateConfig({ listener: { address: '0.0.0.0:8080' }, admin: { address: '127.0.0.1:9901' } }), [])
    assert.deepEqual(validateConfig({ listener: { address: 'nope' }, admin: { address: '127.0.0.1:70000' } }).map((i) => `${i.path} ${i.code}`), [
      'listener.address INVALID_ADDRESS',
      'admin.address INVALID_ADDRESS',
    ])
  })
})

describe('Envoy import of listener and admin addresses', () => {
  const listener = (address: unknown): unknown => ({ address, filter_chains: [] })

  it('takes the first listener address; later ones are reported, their routes still imported', () => {
    const { config, unsupported } = fromEnvoy({
      static_resources: {
        listeners: [
          listener({ socket_address: { address: '::', port_value: 8080 } }),
          listener({ socket_address: { address: '0.0.0.0', port_value: 8443 } }),
        ],
      },
    })
    assert.deepEqual(config.listener, { address: '[::]:8080' })
    assert.deepEqual(unsupported.map((u) => u.path), ['static_resources.listeners[1].address'])
  })

  it('reports UDP and pipe listeners, and an admin without an address', () => {
    const { config, unsupported } = fromEnvoy({
      admin: { access_log_path: '/dev/null' },
      static_resources: {
        listeners: [
          listener({ socket_address: { address: '0.0.0.0', port_value: 53, protocol: 'UDP' } }),
          listener({ pipe: { path: '/tmp/envoy.sock' } }),
        ],
      },
    })
    assert.equal(config.listener, undefined)
    assert.equal(config.admin, undefined)
    assert.deepEqual(unsupported.map((u) => u.path), [
      'static_resources.listeners[0].address.socket_address.protocol',
      'static_resources.listeners[1].address.pipe',
      'admin.access_log_path',
      'admin',
    ])
  })

  it('an unset port_value is port 0, as protobuf reads it', () => {
    const { config } = fromEnvoy({ admin: { address: { socket_address: { address: '127.0.0.1' } } }, static_resources: {} })
    assert.deepEqual(config.admin, { address: '127.0.0.1:0' })
  })
})

describe('admin /config_dump redaction', () => {
  it('hides secret-sounding keys, credential headers and URL passwords', () => {
    const out = redact({
      rateLimit: { global: { redis: 'redis://user:hunter2@redis:6379/0', prefix: 'p' } },
      requestHeadersToAdd: [{ header: { key: 'authorization', value: 'Bearer abc' } }, { header: { key: 'x-team', value: 'a' } }],
      jwt: { privateKey: '-----BEGIN', token: 't' },
    })
    assert.deepEqual(out, {
      rateLimit: { global: { redis: 'redis://[redacted]@redis:6379/0', prefix: 'p' } },
      requestHeadersToAdd: [{ header: { key: 'authorization', value: '[redacted]' } }, { header: { key: 'x-team', value: 'a' } }],
      jwt: { privateKey: '[redacted]', token: '[redacted]' },
    })
    assert.doesNotMatch(JSON.stringify(out), /hunter2|Bearer|BEGIN/)
  })

  it('hides a PEM private key under any key', () => {
    const pem = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n'
    const out = redact({ clusters: [{ name: 'a', tls: { clientKeyPem: pem, note: pem } }], listener: { x: ['-----BEGIN PRIVATE KEY-----abc'] } })
    assert.doesNotMatch(JSON.stringify(out), /PRIVATE KEY|MHcCAQEE/)
  })
})

describe('mesh.wrap', () => {
  it('takes a node:https server (not an http.Server instance)', async () => {
    const mesh = createMesh()
    try {
      const server = https.createServer()
      assert.equal(mesh.wrap(server), server)
    } finally {
      await mesh.close()
    }
  })
})
