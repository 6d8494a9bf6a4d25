/**
 * Makes every node:http and node:https server the process creates run through a mesh,
 * without the app's code knowing: `createServer` is replaced, and `Server` by a proxy of
 * itself whose construction wraps the new server (so `new http.Server()`, subclasses and
 * `instanceof` keep working). ESM and CommonJS apps share the module objects (an app's
 * `import http from 'node:http'` and `require('http')` are the same object), and
 * `syncBuiltinESMExports()` updates the named exports (`import { createServer }`) too.
 * Express, Koa and Fastify call `http.createServer` when they start listening, so they are
 * covered by the same patch.
 *
 * @module
 */
import http from 'node:http'
import https from 'node:https'
import { syncBuiltinESMExports } from 'node:module'

const PATCHED = Symbol.for('sidecarless.httpPatched')

type AnyServer = http.Server | https.Server
type Constructor = new (...args: unknown[]) => AnyServer
type Mutable = { createServer: (this: void, ...args: unknown[]) => AnyServer; Server: Constructor }

/**
 * Patches node:http and node:https once per process so that `wrap` sees every server
 * right after it is constructed. Returns false when they were already patched.
 */
export function patchHttpServers(wrap: (server: AnyServer) => void): boolean {
  const holder = globalThis as { [PATCHED]?: true }
  if (holder[PATCHED] === true) return false
  holder[PATCHED] = true
  for (const mod of [http, https] as unknown as Mutable[]) {
    // node:http's createServer does not use `this`.
    const create = mod.createServer
    const Server = mod.Server
    // Named after the original, so stack traces and `createServer.name` read the same.
    mod.createServer = function createServer(...args: unknown[]): AnyServer {
      const server = create(...args)
      wrap(server)
      return server
    }
    mod.Server = new Proxy(Server, {
      construct(target, args, newTarget): object {
        const server = Reflect.construct(target, args, newTarget) as AnyServer
        wrap(server)
        return server
      },
      // `http.Server()` without `new` constructs too.
      apply(target, _this, args): AnyServer {
        const server = Reflect.construct(target, args)
        wrap(server)
        return server
      },
    })
  }
  syncBuiltinESMExports()
  return true
}
