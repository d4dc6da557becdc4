/**
 * The bench operations the profiling loops take apart, by the names their
 * `--op` option takes.
 */
import { type Options, parseOptions } from "../lib/options.js"
import { workloads } from "../workloads/workloads.js"

const workloadOf: Record<string, string> = {
  append: "W1",
  "version-append": "W2",
  append10: "W3",
  read: "W4.readStream",
  stream: "W4.streamEvents",
  transfer: "W6.transfer"
}

/** The workload `op` names, on the server at `url` (default: the bench's). */
export const profiledWorkload = (op: string, url: string | undefined) => {
  const id = workloadOf[op]
  if (id === undefined) throw new Error(`unknown --op ${op}: one of ${Object.keys(workloadOf).join(", ")}`)
  const options: Options = parseOptions(url === undefined ? [] : ["--url", url])
  const workload = workloads(options).find((w) => w.id === id)
  if (workload === undefined) throw new Error(`no workload ${id}`)
  return { workload, options }
}
