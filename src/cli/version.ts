/** The package's version, for `--version` and the proxy's `/server_info`. */
export { version } from '../version.js'
