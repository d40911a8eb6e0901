#!/usr/bin/env node
// Print the gateway's events as JSON lines (ts as a decimal string of nanoseconds).
//
//   node tail.js [--type trade,order] [--since EPOCH:SEQ] [--count N]
//
// --since resumes after that event: what came after it is replayed from the
// gateway's journal first, then live events follow, each once, in seq order.
// Addresses from QMTBUS_EVENTS / QMTBUS_COMMANDS (defaults tcp://127.0.0.1:7101 / 7102).

import { parseArgs } from "node:util"

import { EventStream, EventsLost, jsonReplacer } from "./qmtbus.js"

const usage = "usage: node tail.js [--type trade,order] [--since EPOCH:SEQ] [--count N]"

function settings() {
  const { values } = parseArgs({
    options: {
      type: { type: "string", default: "" },
      since: { type: "string" },
      count: { type: "string" },
    },
  })
  const since = values.since?.match(/^(.+):(\d+)$/)
  if (values.since !== undefined && !since) throw new Error(`--since must be EPOCH:SEQ; ${usage}`)
  const count = values.count === undefined ? Number.POSITIVE_INFINITY : Number(values.count)
  if (!(count >= 0)) throw new Error(`--count must be a number; ${usage}`)
  const prefixes = values.type ? values.type.split(",").map((t) => `${t.replace(/\.$/, "")}.`) : []
  return {
    prefixes,
    count,
    since: since ? { epoch: since[1], seq: Number(since[2]) } : undefined,
  }
}

async function main() {
  const { prefixes, count, since } = settings()
  const stream = new EventStream({
    eventsAddress: process.env.QMTBUS_EVENTS || undefined,
    commandsAddress: process.env.QMTBUS_COMMANDS || undefined,
    prefixes,
    since,
  })
  process.once("SIGINT", () => stream.close())
  try {
    let printed = 0
    while (printed < count) {
      try {
        for await (const event of stream) {
          console.log(JSON.stringify(event, jsonReplacer))
          if (++printed >= count) break
        }
        return // closed by Ctrl-C
      } catch (err) {
        if (!(err instanceof EventsLost)) throw err
        console.error(`warning: ${err.message}`) // say so, and go on
      }
    }
  } finally {
    stream.close()
  }
}

main().catch((err) => {
  console.error(`error: ${err instanceof Error ? err.message : err}`)
  process.exitCode = err?.name === "GatewaySilent" || err?.name === "GatewayUnreachable" ? 2 : 1
})
