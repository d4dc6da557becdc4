/**
 * Small statistics over samples: percentiles of latencies, medians of repetitions.
 */

/** A growable buffer of latencies in milliseconds. */
export class Latencies {
  private values = new Float64Array(4096)
  private size = 0

  add(ms: number): void {
    if (this.size === this.values.length) {
      const grown = new Float64Array(this.values.length * 2)
      grown.set(this.values)
      this.values = grown
    }
    this.values[this.size++] = ms
  }

  get count(): number {
    return this.size
  }

  /** Percentiles (0-100) by the nearest-rank method; NaN when empty. */
  percentiles(...ps: ReadonlyArray<number>): ReadonlyArray<number> {
    const sorted = this.values.slice(0, this.size).sort()
    return ps.map((p) => nearestRank(sorted, p))
  }
}

const nearestRank = (sorted: Float64Array, p: number): number => {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number
}

/** The median; NaN for no values (NaN values are ignored). */
export const median = (values: ReadonlyArray<number>): number => {
  const sorted = values.filter((value) => !Number.isNaN(value)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}
