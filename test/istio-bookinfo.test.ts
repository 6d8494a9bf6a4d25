/**
 * Istio's Bookinfo routing samples (test/fixtures/istio/bookinfo, ported from istio/istio),
 * given to the mesh as they are — `createMesh({ config: file })`, `mesh.update(file)`,
 * `sidecarless validate`, `--import sidecarless/register` — beside a mesh-config document
 * that gives the endpoints Kubernetes would. Real requests go to real upstream servers, one
 * per service version, and land where Istio's Bookinfo tasks say they do.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createMesh, type Mesh } from '../src/index.js'
import { start, stopAll } from './helpers/spawned.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

// build/test/ → the repository root → the fixtures (not compiled).
const FIXTURES = new URL('../../test/fixtures/istio/bookinfo/', import.meta.url)
const sample = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8')

const versions: Record<string, string[]> = { productpage: ['v1'], reviews: ['v1', 'v2', 'v3'], ratings: ['v1'], details: ['v1', 'v2'] }
const ups = new Map<string, Upstream>()
let dir: string

/** The mesh-config document Kubernetes stands for: each service's pods, labelled by version. */
function endpoints(): string {
  const lines = ['clusters:']
  for (const [svc, vs] of Object.entries(versions)) {
    lines.push(`  - name: ${svc}`, '    endpoints:')
    for (const v of vs) lines.push(`      - { address: "${(ups.get(`${svc}-${v}`) as Upstream).address}", labels: { app: ${svc}, version: ${v} } }`)
  }
  return `${lines.join('\n')}\n`
}

/** A file as `kubectl apply -f a.yaml -f b.yaml` would take it: the documents, one after another. */
function bookinfoFile(name: string, ...samples: string[]): string {
  const file = join(dir, name)
  writeFileSync(file, [endpoints(), ...samples.map(sample)].join('\n---\n'))
  return file
}

async function served(mesh: Mesh, url: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await mesh.fetch(url, { headers })
  const body = await res.text()
  assert.equal(res.status, 200, body)
  return res.headers.get('x-upstream') ?? ''
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sidecarless-bookinfo-'))
  for (const [svc, vs] of Object.entries(versions)) for (const v of vs) ups.set(`${svc}-${v}`, await startUpstream(`${svc}-${v}`))
})

after(async () => {
  stopAll()
  for (const u of ups.values()) await u.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('Bookinfo request routing', () => {
  test('virtual-service-all-v1: every service answers from v1, under every name Istio gives it', async () => {
    const mesh = createMesh({ service: 'productpage', labels: { app: 'productpage', version: 'v1' }, config: bookinfoFile('all-v1.yaml', 'destination-rule-all.yaml', 'virtual-service-all-v1.yaml') })
    try {
      assert.deepEqual(mesh.unsupported, [])
      for (const host of ['reviews:9080', 'reviews.default:9080', 'reviews.default.svc:9080', 'reviews.default.svc.cluster.local:9080', 'reviews']) {
        for (let i = 0; i < 6; i++) assert.equal(await served(mesh, `http://${host}/reviews/0`), 'reviews-v1', host)
      }
      assert.equal(await served(mesh, 'http://ratings:9080/ratings/0'), 'ratings-v1')
      assert.equal(await served(mesh, 'http://details:9080/details/0'), 'details-v1')
    } finally {
      await mesh.close()
    }
  })

  test('virtual-service-reviews-jason-v2-v3: end-user jason gets v2, everyone else v3', async () => {
    const mesh = createMesh({ service: 'productpage', config: bookinfoFile('jason.yaml', 'destination-rule-all.yaml', 'virtual-service-reviews-jason-v2-v3.yaml') })
    try {
      for (let i = 0; i < 10; i++) {
        assert.equal(await served(mesh, 'http://reviews:9080/reviews/0', { 'end-user': 'jason' }), 'reviews-v2')
        assert.equal(await served(mesh, 'http://reviews:9080/reviews/0', { 'end-user': 'alice' }), 'reviews-v3')
        assert.equal(await served(mesh, 'http://reviews:9080/reviews/0'), 'reviews-v3')
      }
    } finally {
      await mesh.close()
    }
  })

  test('mesh.update(file): virtual-service-reviews-test-v2 replaces all-v1 while the mesh runs', async () => {
    const mesh = createMesh({ service: 'productpage', config: bookinfoFile('before.yaml', 'destination-rule-all.yaml', 'virtual-service-all-v1.yaml') })
    try {
      assert.equal(await served(mesh, 'http://reviews:9080/', { 'end-user': 'jason' }), 'reviews-v1')
      const applied = await mesh.update(bookinfoFile('after.yaml', 'destination-rule-all.yaml', 'virtual-service-reviews-test-v2.yaml'))
      assert.equal(applied.version, 2)
      assert.equal(await served(mesh, 'http://reviews:9080/', { 'end-user': 'jason' }), 'reviews-v2')
      assert.equal(await served(mesh, 'http://reviews:9080/'), 'reviews-v1')
    } finally {
      await mesh.close()
    }
  })
})

describe('Bookinfo traffic shifting', () => {
  for (const [file, share] of [['virtual-service-reviews-90-10.yaml', { 'reviews-v1': 0.9, 'reviews-v2': 0.1 }], ['virtual-service-reviews-80-20.yaml', { 'reviews-v1': 0.8, 'reviews-v2': 0.2 }], ['virtual-service-reviews-50-v3.yaml', { 'reviews-v1': 0.5, 'reviews-v3': 0.5 }]] as const) {
    test(`${file}: the split Istio documents, within 5 points over 1000 requests`, async () => {
      const mesh = createMesh({ service: 'productpage', config: bookinfoFile(file, 'destination-rule-all.yaml', file) })
      try {
        const counts = new Map<string, number>()
        const n = 1000
        for (let i = 0; i < n; i++) {
          const who = await served(mesh, 'http://reviews:9080/reviews/0')
          counts.set(who, (counts.get(who) ?? 0) + 1)
        }
        assert.deepEqual([...counts.keys()].sort(), Object.keys(share).sort())
        for (const [who, p] of Object.entries(share)) {
          // 5 points is over 7 standard deviations of a binomial share at n = 1000.
          const got = (counts.get(who) ?? 0) / n
          assert.ok(Math.abs(got - p) < 0.05, `${who}: ${got} of requests, expected ${p}`)
        }
        assert.deepEqual(mesh.traffic.get('reviews.default.svc.cluster.local'), Object.fromEntries(Object.entries(share).map(([k, v]) => [k.slice('reviews-'.length), v * 100])))
      } finally {
        await mesh.close()
      }
    })
  }
})

describe('Bookinfo fault injection', () => {
  test('virtual-service-ratings-test-abort: jason gets the injected 500, others reach ratings v1', async () => {
    const mesh = createMesh({ service: 'reviews', labels: { app: 'reviews', version: 'v2' }, config: bookinfoFile('abort.yaml', 'destination-rule-all.yaml', 'virtual-service-ratings-test-abort.yaml') })
    try {
      const before = (ups.get('ratings-v1') as Upstream).seen.length
      for (let i = 0; i < 5; i++) {
        const res = await mesh.fetch('http://ratings:9080/ratings/0', { headers: { 'end-user': 'jason' } })
        await res.arrayBuffer()
        assert.equal(res.status, 500)
        assert.equal(res.headers.get('x-sidecarless-response-flags'), 'FI')
      }
      assert.equal((ups.get('ratings-v1') as Upstream).seen.length, before, 'aborted requests never reached ratings')
      assert.equal(await served(mesh, 'http://ratings:9080/ratings/0'), 'ratings-v1')
    } finally {
      await mesh.close()
    }
  })

  test('virtual-service-ratings-test-delay: the 7s delay is for jason only (translated; not waited for)', async () => {
    const mesh = createMesh({ service: 'reviews', config: bookinfoFile('delay.yaml', 'destination-rule-all.yaml', 'virtual-service-ratings-test-delay.yaml') })
    try {
      const routes = mesh.config.virtualHosts?.find((v) => v.name === 'ratings.default.svc.cluster.local')?.routes ?? []
      assert.deepEqual(routes.map((r) => r.fault), [{ delay: { fixedDelay: 7000, percentage: 100 } }, undefined])
      assert.deepEqual(routes[0]?.match.headers, [{ name: 'end-user', exact: 'jason' }])
      assert.equal(await served(mesh, 'http://ratings:9080/ratings/0'), 'ratings-v1')
    } finally {
      await mesh.close()
    }
  })

  test('fault-injection-details-v1: every request to details gets 555 from the mesh', async () => {
    const mesh = createMesh({ service: 'productpage', config: bookinfoFile('details.yaml', 'fault-injection-details-v1.yaml') })
    try {
      const res = await mesh.fetch('http://details:9080/details/0')
      await res.arrayBuffer()
      assert.equal(res.status, 555)
    } finally {
      await mesh.close()
    }
  })
})

describe('Istio manifests through the other entry points', () => {
  test('sidecarless validate: the Bookinfo file is valid, the gateway-only VirtualService is named as not applying', async () => {
    // Documents: 1 the endpoints, 2–5 the DestinationRules, 6 the empty one after the sample's
    // closing `---`, 7 the VirtualService, 8 the Gateway, 9 the gateway's VirtualService.
    const file = bookinfoFile('validate.yaml', 'destination-rule-all.yaml', 'virtual-service-reviews-jason-v2-v3.yaml', 'bookinfo-gateway.yaml')
    const p = start(process.execPath, ['dist/cli/main.js', 'validate', file])
    const { code } = await p.exited()
    assert.equal(code, 0, p.stdout() + p.stderr())
    assert.match(p.stdout(), /warning: Gateway bookinfo-gateway \(doc 8\): UNSUPPORTED an Istio Gateway configures ingress/)
    assert.match(p.stdout(), /warning: VirtualService bookinfo \(doc 9\)\.spec\.gateways: UNSUPPORTED applies to gateways bookinfo-gateway, not to sidecars/)
    assert.match(p.stdout(), /: valid: 4 clusters, 4 virtual hosts, 5 routes \(Istio manifests; 2 not translated\)\n$/)
  })

  test('--import sidecarless/register with SIDECARLESS_CONFIG an Istio file: the namespace and labels pick the rules', async () => {
    const canary = ups.get('reviews-v2') as Upstream
    const stable = ups.get('reviews-v1') as Upstream
    // The app calls http://backend/call. Its VirtualService lives in namespace shop; the route
    // for workloads labelled track=canary goes to subset canary (Istio's sourceLabels: a
    // selector of the calling workload, which the in-process mesh knows).
    const file = join(dir, 'register.yaml')
    writeFileSync(file, `clusters:
  - name: backend.shop
    endpoints:
      - { address: "${stable.address}", labels: { track: stable } }
      - { address: "${canary.address}", labels: { track: canary } }
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: backend, namespace: shop }
spec:
  host: backend
  subsets:
    - { name: stable, labels: { track: stable } }
    - { name: canary, labels: { track: canary } }
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: { name: backend, namespace: shop }
spec:
  hosts: [ backend ]
  http:
    - match: [ { sourceLabels: { track: canary } } ]
      route: [ { destination: { host: backend, subset: canary } } ]
    - route: [ { destination: { host: backend, subset: stable } } ]
`)
    const run = async (labels: string): Promise<string> => {
      const app = start(process.execPath, ['--import', 'sidecarless/register', 'test/fixtures/apps/esm-http.mjs'], { SIDECARLESS_CONFIG: file, SIDECARLESS_NAMESPACE: 'shop', SIDECARLESS_LABELS: labels })
      try {
        const m = await app.waitFor(/"port":(\d+)/)
        const res = await fetch(`http://127.0.0.1:${m[1] as string}/call`)
        const got = (await res.json()) as { fetch: { status: number; body: string } }
        assert.equal(got.fetch.status, 200, app.stderr())
        return got.fetch.body
      } finally {
        app.child.kill('SIGKILL')
      }
    }
    assert.equal(await run('track=canary'), 'reviews-v2 /call')
    assert.equal(await run('track=stable'), 'reviews-v1 /call')
  })
})
