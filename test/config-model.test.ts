/**
 * The config is described three times: its TypeScript types (`config/types.ts`, what users
 * write), the schema (`config/schema.ts`, which the structural pass of validation walks,
 * refusing unknown fields) and the semantic checks (`config/validate.ts`, which read the
 * types). A field added to the types and forgotten in the schema is refused as unknown; one
 * added to the schema and not the types is accepted but untyped. This test reads the types
 * with TypeScript's own checker and walks them beside the schema, object by object, so a
 * field in one and not the other fails here with its path.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import ts from 'typescript'
import { meshConfigFields, type Fields, type Spec } from '../src/config/schema.js'
import { root } from './helpers/spawned.js'

const typesFile = join(root, 'src/config/types.ts')
const program = ts.createProgram([typesFile], { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, strict: true, noEmit: true, skipLibCheck: true })
const checker = program.getTypeChecker()

function exported(name: string): ts.Type {
  const source = program.getSourceFile(typesFile) ?? assert.fail(`cannot read ${typesFile}`)
  const moduleSymbol = checker.getSymbolAtLocation(source) ?? assert.fail('types.ts has no module symbol')
  const symbol = checker.getExportsOfModule(moduleSymbol).find((s) => s.name === name) ?? assert.fail(`types.ts exports no ${name}`)
  return checker.getDeclaredTypeOfSymbol(symbol)
}

/** The members of `type` that are objects (not strings, numbers, booleans, null or undefined). */
function objectMembers(type: ts.Type): ts.Type[] {
  const members = type.isUnion() ? type.types : [type]
  return members.filter((t) => (t.flags & ts.TypeFlags.Object) !== 0 && !checker.isArrayType(t) && !checker.isTupleType(t))
}

function arrayElements(type: ts.Type): ts.Type[] {
  const members = type.isUnion() ? type.types : [type]
  return members.filter((t) => checker.isArrayType(t)).map((t) => checker.getTypeArguments(t as ts.TypeReference)[0] as ts.Type)
}

function union(types: ts.Type[]): ts.Type[] {
  return types.flatMap((t) => (t.isUnion() ? t.types : [t]))
}

/** Paths of the objects compared, so a walk that sees nothing cannot pass. */
const compared: string[] = []

/** Every mismatch between the object types `types` (their properties, merged) and `fields`, under `path`. */
function compareObject(path: string, types: ts.Type[], fields: Fields, out: string[]): void {
  compared.push(path)
  const props = new Map<string, ts.Type[]>()
  for (const t of types) {
    for (const p of checker.getPropertiesOfType(t)) {
      const pt = checker.getNonNullableType(checker.getTypeOfSymbol(p))
      props.set(p.name, [...(props.get(p.name) ?? []), pt])
    }
  }
  for (const name of props.keys()) if (!(name in fields)) out.push(`${path}.${name}: in types.ts, not in schema.ts`)
  for (const name of Object.keys(fields)) if (!props.has(name)) out.push(`${path}.${name}: in schema.ts, not in types.ts`)
  for (const [name, spec] of Object.entries(fields)) {
    const t = props.get(name)
    if (t !== undefined) compareSpec(`${path}.${name}`, union(t), spec, out)
  }
}

function compareSpec(path: string, types: ts.Type[], spec: Spec, out: string[]): void {
  if (spec.t === 'object') {
    const objects = types.flatMap(objectMembers)
    if (objects.length === 0) out.push(`${path}: an object in schema.ts, not in types.ts`)
    else compareObject(path, objects, spec.fields, out)
  } else if (spec.t === 'array') {
    const elements = union(types.flatMap(arrayElements))
    if (elements.length === 0) out.push(`${path}: a list in schema.ts, not in types.ts`)
    else compareSpec(`${path}[]`, elements, spec.of, out)
  } else if (spec.t === 'map') {
    const values = types.flatMap(objectMembers).map((t) => checker.getIndexTypeOfType(t, ts.IndexKind.String)).filter((t): t is ts.Type => t !== undefined)
    if (values.length === 0) out.push(`${path}: a map in schema.ts, not in types.ts`)
    else compareSpec(`${path}{}`, union(values), spec.of, out)
  }
}

test('every field of the config types is in the schema, and every field of the schema in the types', () => {
  const mismatches: string[] = []
  compared.length = 0
  compareObject('MeshConfig', [exported('MeshConfig')], meshConfigFields, mismatches)
  assert.deepEqual(mismatches, [])
  // The walk reached every level: clusters, routes, listener, down to header matchers.
  assert.ok(compared.length > 100, `compared ${compared.length} object types`)
  for (const path of ['MeshConfig.clusters[].circuitBreakers.errorRate', 'MeshConfig.virtualHosts[].routes[].route.retryPolicy.retriableHeaders[].rangeMatch', 'MeshConfig.listener.mtls.portLevelMtls{}']) {
    assert.ok(compared.includes(path), `${path} was not compared`)
  }
})

test('the comparison sees a field missing on either side (a field added to one copy only fails the test above)', () => {
  const { clusters, ...withoutClusters } = meshConfigFields
  const out: string[] = []
  compareObject('MeshConfig', [exported('MeshConfig')], { ...withoutClusters, extra: { t: 'string' } }, out)
  assert.ok(clusters !== undefined)
  assert.deepEqual(out.sort(), ['MeshConfig.clusters: in types.ts, not in schema.ts', 'MeshConfig.extra: in schema.ts, not in types.ts'])
  // Nested too: a cluster without its `endpoints` in the schema.
  const nested: string[] = []
  const clusterSpec = meshConfigFields['clusters'] as Extract<Spec, { t: 'array' }>
  const clusterFields = (clusterSpec.of as Extract<Spec, { t: 'object' }>).fields
  const { endpoints, ...clusterWithoutEndpoints } = clusterFields
  assert.ok(endpoints !== undefined)
  compareObject('MeshConfig', [exported('MeshConfig')], { ...meshConfigFields, clusters: { t: 'array', of: { t: 'object', fields: clusterWithoutEndpoints } } }, nested)
  assert.deepEqual(nested, ['MeshConfig.clusters[].endpoints: in types.ts, not in schema.ts'])
})
