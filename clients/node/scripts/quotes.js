#!/usr/bin/env node
// Stream ticks of some codes, for tests/clients/test_node.py: prints the
// query_quote reply as one JSON line, then QMTBUS_COUNT ticks, one per line,
// then releases the codes and exits 0.
//
//   QMTBUS_COMMANDS, QMTBUS_QUOTES  gateway addresses
//   QMTBUS_CODES  comma-separated stock codes     QMTBUS_COUNT  ticks to print (default 5)

import { Gateway, QuoteStream, jsonReplacer } from "../qmtbus.js"

const env = process.env
const codes = (env.QMTBUS_CODES || "600000.SH").split(",")
const gw = new Gateway({ address: env.QMTBUS_COMMANDS })
const quotes = new QuoteStream({ quotesAddress: env.QMTBUS_QUOTES, gateway: gw, codes })
try {
  await quotes.ready()
  console.log(JSON.stringify({ quotes: await gw.queryQuote(codes) }, jsonReplacer))
  let left = Number(env.QMTBUS_COUNT || 5)
  for await (const tick of quotes) {
    console.log(JSON.stringify(tick, jsonReplacer))
    if (--left <= 0) break
  }
} catch (err) {
  console.error(`error: ${err instanceof Error ? `${err.name} ${err.message}` : err}`)
  process.exitCode = 1
} finally {
  await quotes.close()
  gw.close()
}
