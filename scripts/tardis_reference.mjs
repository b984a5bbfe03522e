#!/usr/bin/env node
// Reference output of tardis-node's computables for a captured pinfeed stream.
//
//   usage: node scripts/tardis_reference.mjs --types TYPE[,TYPE...] [INPUT.jsonl]
//          node scripts/tardis_reference.mjs --map EXCHANGE --types TYPE[,TYPE...] [INPUT.jsonl]
//
// Reads normalized messages (tardis-machine wire JSON, one per line: what a pinfeed client
// received, e.g. `trade` and `book_change`) from INPUT or stdin, runs them through tardis-dev's
// own `compute()` with the computables tardis-machine builds for TYPE (`trade_bar_*`,
// `book_snapshot_*` including `_grouped`, `quote`, `quote_*`: the parsing of tardis-machine's
// `src/helpers.ts` `getComputables`), and prints every computed message as tardis-machine
// would send it (its `Date.prototype.toISOString` patch: microseconds when the source time had
// them). Source messages are not printed.
//
// With --map, INPUT holds raw venue frames instead, one `{"localTimestamp": ISO, "message":
// FRAME}` per line, and each goes through tardis-dev's own normalizers for TYPE
// (`option_summary`, `derivative_ticker`, `trade`, `book_change`, `book_ticker`,
// `liquidation`) for EXCHANGE; every normalized message is printed.
//
// Needs the npm package tardis-dev: resolved from TARDIS_NODE_MODULES (a node_modules
// directory), else from the usual module path. scripts/test.sh installs it under
// target/tardis-node.
import { createRequire } from 'node:module'
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import path from 'node:path'

const require = createRequire(import.meta.url)
const modules = process.env.TARDIS_NODE_MODULES
const tardis = require(modules ? path.join(path.resolve(modules), 'tardis-dev') : 'tardis-dev')

function usage(msg) {
  if (msg) console.error(`tardis_reference: ${msg}`)
  console.error('usage: node scripts/tardis_reference.mjs --types TYPE[,TYPE...] [INPUT.jsonl]')
  process.exit(2)
}

const args = process.argv.slice(2)
let types = []
let mapExchange
let input
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--types') {
    types = (args[++i] ?? '').split(',').filter((t) => t.length > 0)
  } else if (args[i] === '--map') {
    mapExchange = args[++i]
  } else if (input === undefined) {
    input = args[i]
  } else {
    usage(`unexpected argument ${args[i]}`)
  }
}
if (types.length === 0) usage('no --types')

const TIME_UNITS = [
  ['ms', 1],
  ['s', 1000],
  ['m', 60 * 1000]
]
const BAR_SUFFIXES = [
  ['ticks', 'tick', 1],
  ['ms', 'time', 1],
  ['s', 'time', 1000],
  ['m', 'time', 60 * 1000],
  ['vol', 'volume', 1]
]

function number(text, what, type) {
  const n = Number(text)
  if (Number.isNaN(n)) throw new Error(`invalid ${what}: ${text}, data type: ${type}`)
  return n
}

// tardis-machine src/helpers.ts getComputables, the same grammar
function computable(type) {
  if (type.startsWith('trade_bar')) {
    for (const [suffix, kind, mult] of BAR_SUFFIXES) {
      if (!type.endsWith(suffix)) continue
      const n = number(type.replace('trade_bar_', '').replace(suffix, ''), 'interval', type)
      return tardis.computeTradeBars({ kind, interval: mult * n, name: type })
    }
    throw new Error(`invalid data type: ${type}`)
  }
  if (type === 'quote') {
    return tardis.computeBookSnapshots({ depth: 1, interval: 0, name: type, removeCrossedLevels: true })
  }
  for (const [suffix, mult] of TIME_UNITS) {
    if (!type.endsWith(suffix)) continue
    if (type.startsWith('quote_')) {
      const n = number(type.replace('quote_', '').replace(suffix, ''), 'interval', type)
      return tardis.computeBookSnapshots({ depth: 1, interval: mult * n, name: type, removeCrossedLevels: true })
    }
    if (type.startsWith('book_snapshot')) {
      const parts = type.split('_')
      const depth = number(parts[2], 'depth', type)
      const interval = mult * number(parts[parts.length - 1].replace(suffix, ''), 'interval', type)
      const grouping = parts.length === 5 ? number(parts[3].replace('grouped', ''), 'interval', type) : undefined
      return tardis.computeBookSnapshots({ depth, interval, grouping, name: type, removeCrossedLevels: true })
    }
  }
  throw new Error(`invalid data type: ${type}`)
}

// A wire timestamp as tardis-node's Date: whole ms, plus `μs` (the sub-ms microseconds) when
// it had six fraction digits.
function reviveDate(text) {
  const date = new Date(text)
  const m = /\.(\d{6})Z$/.exec(text)
  if (m) date.μs = Number(m[1].slice(3))
  return date
}

const toISOString = Date.prototype.toISOString
Date.prototype.toISOString = function () {
  const iso = toISOString.apply(this)
  if (this.μs === undefined) return iso
  return iso.slice(0, iso.length - 1) + this.μs.toString().padStart(3, '0') + 'Z'
}

const NORMALIZERS = {
  option_summary: tardis.normalizeOptionsSummary,
  derivative_ticker: tardis.normalizeDerivativeTickers,
  trade: tardis.normalizeTrades,
  book_change: tardis.normalizeBookChanges,
  book_ticker: tardis.normalizeBookTickers,
  liquidation: tardis.normalizeLiquidations
}

function lines() {
  return createInterface({ input: input ? createReadStream(input) : process.stdin, crlfDelay: Infinity })
}

if (mapExchange !== undefined) {
  const mappers = types.map((t) => {
    const factory = NORMALIZERS[t]
    if (factory === undefined) usage(`--map: no normalizer for ${t}`)
    return factory(mapExchange, new Date())
  })
  const out = []
  for await (const line of lines()) {
    if (line.trim().length === 0) continue
    const { localTimestamp, message } = JSON.parse(line)
    const local = reviveDate(localTimestamp)
    const msg = JSON.parse(message)
    for (const mapper of mappers) {
      if (!mapper.canHandle(msg)) continue
      for (const m of mapper.map(msg, local)) out.push(JSON.stringify(m))
    }
  }
  if (out.length > 0) process.stdout.write(out.join('\n') + '\n')
  process.exit(0)
}

async function* messages() {
  for await (const line of lines()) {
    if (line.trim().length === 0) continue
    const m = JSON.parse(line)
    for (const key of ['timestamp', 'localTimestamp']) {
      if (typeof m[key] === 'string') m[key] = reviveDate(m[key])
    }
    yield m
  }
}

const computed = new Set(['trade_bar', 'book_snapshot'])
const out = []
for await (const m of tardis.compute(messages(), ...types.map(computable))) {
  if (computed.has(m.type)) out.push(JSON.stringify(m))
  if (out.length >= 1024) {
    process.stdout.write(out.join('\n') + '\n')
    out.length = 0
  }
}
if (out.length > 0) process.stdout.write(out.join('\n') + '\n')
