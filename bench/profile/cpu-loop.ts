/**
 * A focused loop for the JS-side profile: one bench operation against the
 * PostgreSQL store (or the raw baseline) on a scratch database, with the CPU
 * profiler running for the measured loop only (node:inspector, the same
 * .cpuprofile format as `node --cpu-prof`). Summarize it with cpu-summary.ts.
 *
 *   npx tsx bench/profile/cpu-loop.ts --op append|append10|version-append|read|stream|transfer \
 *     [--system postgres|raw] [--seconds 15] [--concurrency 1] [--out /tmp/eventcore-profile]
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { run } from "../lib/measure.js"
import { adminOf } from "../lib/server.js"
import { postgresSystem } from "../systems/eventcore.js"
import { rawSystem } from "../systems/raw.js"
import type { System } from "../systems/system.js"
import { profiledWorkload } from "./ops.js"

const { values } = parseArgs({
  options: {
    op: { type: "string", default: "append" },
    system: { type: "string", default: "postgres" },
    seconds: { type: "string", default: "15" },
    concurrency: { type: "string", default: "1" },
    out: { type: "string", default: "/tmp/eventcore-profile" },
    url: { type: "string" }
  }
})

const { workload, options } = profiledWorkload(values.op, values.url)

const admin = adminOf(options.url)
const url = await admin.create(`eventcore_cpu_${process.pid}`)
let system: System | undefined
try {
  system = values.system === "raw" ? await rawSystem(url, 10) : await postgresSystem(url, 10)
  const operation = await workload.prepare(system)
  const concurrency = Number(values.concurrency)
  await run(operation, { concurrency, seconds: 2 }) // warm-up: JIT, prepared statements, pools

  const session = new Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 100 })
  await session.post("Profiler.start")
  const sample = await run(operation, { concurrency, seconds: Number(values.seconds) })
  const { profile } = await session.post("Profiler.stop")
  session.disconnect()

  mkdirSync(values.out, { recursive: true })
  const file = join(values.out, `${values.system}-${values.op}-c${concurrency}.cpuprofile`)
  writeFileSync(file, JSON.stringify(profile))
  console.log(
    `${values.system} ${values.op} c${concurrency}: ${sample.opsPerSec.toFixed(0)} ops/s, p50 ${sample.p50Ms.toFixed(3)} ms, ` +
      `p99 ${sample.p99Ms.toFixed(3)} ms, ${sample.ops} ops in ${sample.seconds.toFixed(1)} s; profile: ${file}`
  )
} finally {
  await system?.close()
  await admin.close()
}
