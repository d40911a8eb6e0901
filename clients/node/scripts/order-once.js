#!/usr/bin/env node
// Place one limit buy with a short reply timeout and many retries, print the
// order_ack as one JSON line (for tests/clients/test_node.py's retry tests).
//
//   QMTBUS_COMMANDS  gateway command address
//   QMTBUS_COID      client_order_id to use       QMTBUS_PRICE  limit price
//   QMTBUS_TIMEOUT_MS reply timeout per attempt   QMTBUS_RETRIES resends after a timeout

import { Gateway } from "../qmtbus.js"

const env = process.env
const gw = new Gateway({
  address: env.QMTBUS_COMMANDS,
  timeoutMs: Number(env.QMTBUS_TIMEOUT_MS || 500),
  retries: Number(env.QMTBUS_RETRIES || 20),
})
try {
  const ack = await gw.buy(env.QMTBUS_STOCK || "600000.SH", 100, Number(env.QMTBUS_PRICE), {
    client_order_id: env.QMTBUS_COID,
    strategy_name: "node-retry",
  })
  console.log(JSON.stringify(ack))
} catch (err) {
  console.error(`error: ${err instanceof Error ? `${err.name} ${err.message}` : err}`)
  process.exitCode = 1
} finally {
  gw.close()
}
