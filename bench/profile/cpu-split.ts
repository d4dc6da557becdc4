/**
 * Where an operation's CPU goes, counted by the kernel rather than sampled:
 * this Node process's user + system time (`process.cpuUsage`) and the
 * PostgreSQL server's (every process of the server, from /proc), per
 * operation, for one bench operation on a scratch database. Linux only, and
 * the server must run on this machine.
 *
 * The sampling profiler (cpu-loop.ts) cannot tell these apart: on two cores a
 * backend woken by a query's socket write often runs on the writer's core,
 * and the samples taken meanwhile land in Node's `writeBuffer`.
 *
 *   npx tsx bench/profile/cpu-split.ts --op version-append --systems raw,postgres,emmett \
 *     [--seconds 8] [--concurrency 1] [--reps 3]
 */
import { readdirSync, readFileSync } from "node:fs"
import { parseArgs } from "node:util"
import { run } from "../lib/measure.js"
import { adminOf } from "../lib/server.js"
import { emmettSystem } from "../systems/emmett.js"
import { postgresSystem } from "../systems/eventcore.js"
import { rawSystem } from "../systems/raw.js"
import type { System } from "../systems/system.js"
import { profiledWorkload } from "./ops.js"

const { values } = parseArgs({
  options: {
    op: { type: "string", default: "version-append" },
    systems: { type: "string", default: "raw,postgres" },
    seconds: { type: "string", default: "8" },
    concurrency: { type: "string", default: "1" },
    reps: { type: "string", default: "3" },
    url: { type: "string" }
  }
})

const { workload, options } = profiledWorkload(values.op, values.url)

const ticksPerSecond = 100

/** CPU seconds used so far by every process whose command line names the server (`postgres:` or the postmaster). */
const serverCpuSeconds = (): number => {
  let ticks = 0
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      if (name !== "postgres") continue
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      ticks += Number(fields[11]) + Number(fields[12]) // utime, stime
    } catch {
      // The process ended meanwhile.
    }
  }
  return ticks / ticksPerSecond
}

const open = (name: string, url: string): Promise<System> => {
  if (name === "raw") return rawSystem(url, 10)
  if (name === "postgres") return postgresSystem(url, 10)
  if (name === "emmett") return emmettSystem(url)
  throw new Error(`unknown system ${name}: raw, postgres or emmett`)
}

const admin = adminOf(options.url)
const concurrency = Number(values.concurrency)
const seconds = Number(values.seconds)
try {
  console.log(`${values.op} c${concurrency}, ${seconds} s per run; CPU per operation in µs`)
  console.log("system    rep   ops/s   node µs/op (of which system)   server µs/op   wall µs/op")
  for (let rep = 1; rep <= Number(values.reps); rep++) {
    for (const name of (values.systems as string).split(",")) {
      const url = await admin.create(`eventcore_cpu_${process.pid}_${name}`)
      const system = await open(name, url)
      try {
        const operation = await workload.prepare(system)
        await run(operation, { concurrency, seconds: 2 })
        const node = process.cpuUsage()
        const server = serverCpuSeconds()
        const sample = await run(operation, { concurrency, seconds })
        const nodeUs = process.cpuUsage(node)
        const serverUs = (serverCpuSeconds() - server) * 1e6
        const perOp = (us: number) => (us / sample.ops).toFixed(0).padStart(12)
        console.log(
          `${name.padEnd(9)} ${String(rep).padStart(3)} ${sample.opsPerSec.toFixed(0).padStart(7)} ` +
            `${perOp(nodeUs.user + nodeUs.system)} ${`(${perOp(nodeUs.system).trim()})`.padStart(18)} ${perOp(serverUs).padStart(14)} ${perOp(sample.seconds * 1e6 * concurrency)}`
        )
      } finally {
        await system.close()
      }
    }
  }
} finally {
  await admin.close()
}
