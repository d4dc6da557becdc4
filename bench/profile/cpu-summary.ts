/**
 * Summarizes a .cpuprofile (from cpu-loop.ts or `node --cpu-prof`): where the
 * CPU time went by package, and the functions with the most self time.
 *
 *   npx tsx bench/profile/cpu-summary.ts FILE.cpuprofile [--top 25] [--ops N]
 *
 * With --ops (operations the loop ran), also prints microseconds per operation.
 */
import { readFileSync } from "node:fs"
import { parseArgs } from "node:util"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
  readonly startTime: number
  readonly endTime: number
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "25" }, ops: { type: "string" } }
})
const file = positionals[0]
if (file === undefined) throw new Error("usage: cpu-summary.ts FILE.cpuprofile [--top N] [--ops N]")
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
const ops = values.ops === undefined ? undefined : Number(values.ops)

/** Which part of the system a frame belongs to. */
const category = (frame: ProfileNode["callFrame"]): string => {
  const { url, functionName } = frame
  if (url === "") {
    if (["(idle)", "(program)", "(garbage collector)", "(root)"].includes(functionName)) return functionName
    return "(native)"
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1]
  if (pkg !== undefined) return pkg
  if (url.includes("/src/")) return "eventcore (src)"
  if (url.includes("/bench/")) return "bench harness"
  if (url.includes("/examples/")) return "examples"
  if (url.startsWith("node:")) return "node internals"
  return url
}

const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const self = new Map<number, number>()
// timeDeltas[i] is the time before sample i; attribute it to the sample.
profile.samples.forEach((id, i) => {
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
})
const total = [...self.values()].reduce((a, b) => a + b, 0)
const busy =
  total -
  [...self.entries()].filter(([id]) => byId.get(id)?.callFrame.functionName === "(idle)").reduce((a, [, t]) => a + t, 0)

const byCategory = new Map<string, number>()
const byFunction = new Map<string, number>()
for (const [id, time] of self) {
  const frame = (byId.get(id) as ProfileNode).callFrame
  const cat = category(frame)
  byCategory.set(cat, (byCategory.get(cat) ?? 0) + time)
  const where =
    frame.url === ""
      ? ""
      : ` ${frame.url.replace(/^.*\/node_modules\//, "").replace(/^file:\/\/.*\/main\//, "")}:${frame.lineNumber + 1}`
  const key = `${frame.functionName || "(anonymous)"}${where}`
  byFunction.set(key, (byFunction.get(key) ?? 0) + time)
}

const ms = (us: number) => (us / 1000).toFixed(0).padStart(7)
const share = (us: number) => `${((us / busy) * 100).toFixed(1).padStart(5)}%`
const perOp = (us: number) => (ops === undefined ? "" : `  ${(us / ops).toFixed(1).padStart(7)} µs/op`)

console.log(
  `${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (not idle)${ops === undefined ? "" : `, ${ops} ops`}`
)
console.log("\nself time by package (share of busy time):")
for (const [cat, time] of [...byCategory].sort((a, b) => b[1] - a[1])) {
  if (cat === "(idle)") continue
  console.log(`${ms(time)} ms ${share(time)}${perOp(time)}  ${cat}`)
}
console.log(`\ntop ${values.top} functions by self time:`)
for (const [name, time] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
  if (name.startsWith("(idle)")) continue
  console.log(`${ms(time)} ms ${share(time)}${perOp(time)}  ${name}`)
}
