#!/usr/bin/env node
// How the Node client surfaces failures, one JSON line per case, for
// tests/clients/test_node.py: an invalid order (BAD_REQUEST), an unknown
// command (UNKNOWN_TYPE), a risk denial (RISK_DENIED with its rule) and a
// gateway that is not there (GatewayUnreachable). Exits 0 when every case
// threw; 1 when one did not.
//
//   QMTBUS_COMMANDS  a running gateway;  QMTBUS_DEAD  an address nobody serves
//   QMTBUS_PRICE     the current price of 600000.SH (the risk case orders at 3x it)

import { Gateway, QmtbusError } from "../qmtbus.js"

const gw = new Gateway({ address: process.env.QMTBUS_COMMANDS, timeoutMs: 3000 })
const dead = new Gateway({ address: process.env.QMTBUS_DEAD, timeoutMs: 300, retries: 1 })
const price = Number(process.env.QMTBUS_PRICE || 10)

const cases = {
  bad_stock_code: () => gw.buy("NOT-A-CODE", 100, price),
  unknown_type: () => gw.request({ type: "no_such_command" }),
  risk_denied: () => gw.buy("600000.SH", 100, Math.round(price * 300) / 100),
  unreachable: () => dead.status(),
}

let ok = true
for (const [name, run] of Object.entries(cases)) {
  try {
    const reply = await run()
    ok = false
    console.log(JSON.stringify({ case: name, threw: false, reply }))
  } catch (caught) {
    const err = /** @type {any} */ (caught)
    const { code = "", rule = "", sent } = err
    console.log(
      JSON.stringify({
        case: name,
        threw: true,
        name: err.name,
        is_qmtbus_error: err instanceof QmtbusError,
        code,
        message: err.message,
        rule,
        sent,
      }),
    )
  }
}
gw.close()
dead.close()
process.exitCode = ok ? 0 : 1
