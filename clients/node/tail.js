#!/usr/bin/env node
// Print the gateway's events as JSON lines (ts as a decimal string of nanoseconds).
//
//   node tail.js [--type trade,order] [--since EPOCH:SEQ] [--count N]
//
// --since resumes after that event: what came after it is replayed from the
// gateway's journal first, then live events follow, each once, in seq order.
// Addresses from QMTBUS_EVENTS / QMTBUS_COMMANDS (defaults tcp://127.0.0.1:7101 / 7102).

import { parseArgs } from "node:util"

// qmtbus.js is loaded after the arguments are read, so --help works before `npm ci`.

const usage = "usage: node tail.js [--type trade,order] [--since EPOCH:SEQ] [--count N]"
const help = `${usage}

Print the gateway's events as JSON lines, each once, in seq order.

  --type T1,T2       only these event types (trade, order, asset, note, ...)
  --since EPOCH:SEQ  first replay what came after that event (epoch and last_seq
                     from \`qmtbus status\`), then follow live events
  --count N          stop after N events
  -h, --help         this text

Addresses: QMTBUS_EVENTS (default tcp://127.0.0.1:7101), QMTBUS_COMMANDS
(default tcp://127.0.0.1:7102). Exit 0 done, 1 an error, 2 gateway silent or
unreachable, 64 bad arguments.`

function settings() {
  let values
  try {
    ;({ values } = parseArgs({
      options: {
        type: { type: "string", default: "" },
        since: { type: "string" },
        count: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }))
  } catch (err) {
    throw new UsageError(`${err.message}; ${usage}`)
  }
  if (values.help) {
    console.log(help)
    process.exit(0)
  }
  const since = values.since?.match(/^(.+):(\d+)$/)
  if (values.since !== undefined && !since) throw new UsageError(`--since must be EPOCH:SEQ; ${usage}`)
  const count = values.count === undefined ? Number.POSITIVE_INFINITY : Number(values.count)
  if (!(count >= 0)) throw new UsageError(`--count must be a number; ${usage}`)
  const prefixes = values.type ? values.type.split(",").map((t) => `${t.replace(/\.$/, "")}.`) : []
  return {
    prefixes,
    count,
    since: since ? { epoch: since[1], seq: Number(since[2]) } : undefined,
  }
}

async function main() {
  const { prefixes, count, since } = settings()
  const { EventStream, EventsLost, jsonReplacer } = await import("./qmtbus.js")
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

class UsageError extends Error {}

main().catch((err) => {
  console.error(`error: ${err instanceof Error ? err.message : err}`)
  if (err instanceof UsageError) process.exitCode = 64
  else process.exitCode = err?.name === "GatewaySilent" || err?.name === "GatewayUnreachable" ? 2 : 1
})
