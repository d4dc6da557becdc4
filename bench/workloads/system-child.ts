/**
 * One system under test in a process of its own (W4.readStream): opens the
 * system, seeds and prepares one workload, then measures the cells it is sent,
 * so that no other system's pool, heap or garbage shares the process it is
 * measured in. Started and driven by lib/own-process.ts.
 *
 *   node system-child.mjs --workload W4.readStream --system postgres --url URL
 *     [--emmett-url URL] --pool-size N --options JSON   (the bench's parsed options)
 *
 * Writes JSON lines on stdout: {"type":"ready","size":...} once prepared (size:
 * the SQL systems' streams and events on the server), then for each request
 * read from stdin ({"concurrency":c,"seconds":s}, one JSON line) progress lines
 * {"type":"progress","ops":n,"elapsed":s} and {"type":"sample","sample":...},
 * the sample `run` returns. Once its stdin closes it closes the system and
 * writes {"type":"result"}.
 */
import { createInterface } from "node:readline"
import { parseArgs } from "node:util"
import { type RunOptions, run } from "../lib/measure.js"
import { type Options, type SystemName, systemNames } from "../lib/options.js"
import { openSystem } from "../systems/open.js"
import { workloads } from "./workloads.js"

/** A cell to measure, as the bench sends it. */
export type CellRequest = Pick<RunOptions, "concurrency" | "seconds">

const { values } = parseArgs({
  options: {
    workload: { type: "string" },
    system: { type: "string" },
    url: { type: "string" },
    "emmett-url": { type: "string" },
    "pool-size": { type: "string" },
    options: { type: "string" }
  }
})
const { workload: id, system: name, url, options } = values
if (id === undefined || name === undefined || url === undefined || options === undefined) {
  throw new Error("--workload, --system, --url and --options are required")
}
if (!(systemNames as ReadonlyArray<string>).includes(name)) throw new Error(`unknown system ${name}`)
const workload = workloads(JSON.parse(options) as Options).find((candidate) => candidate.id === id)
if (workload === undefined) throw new Error(`unknown workload ${id}`)

const emit = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`)

const system = await openSystem(name as SystemName, {
  url,
  emmettUrl: values["emmett-url"],
  poolSize: Number(values["pool-size"] ?? 10)
})
const operation = await workload.prepare(system)
emit({ type: "ready", size: system.size === undefined ? null : await system.size() })

for await (const line of createInterface({ input: process.stdin })) {
  const cell = JSON.parse(line) as CellRequest
  const sample = await run(operation, {
    ...cell,
    onProgress: (ops, elapsed) => emit({ type: "progress", ops, elapsed })
  })
  emit({ type: "sample", sample })
}
await system.close()
emit({ type: "result" })
process.exit(0)
