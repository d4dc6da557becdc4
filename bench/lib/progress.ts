/**
 * The live progress line: one line rewritten in place on a terminal, plain
 * lines otherwise (CI logs, redirected output). Written to stderr so that
 * stdout carries only the results.
 */
import { performance } from "node:perf_hooks"

const stream = process.stderr
const interactive = stream.isTTY === true

export const clock = (seconds: number) => {
  const whole = Math.round(seconds)
  const minutes = Math.floor(whole / 60)
  return minutes > 0 ? `${minutes}m${String(whole % 60).padStart(2, "0")}s` : `${whole}s`
}

export class Progress {
  private readonly started = performance.now()
  private current = ""
  private lastDraw = 0

  /** The status of the moment: redrawn in place on a terminal (at most 10 times a second), dropped otherwise. */
  status(text: string): void {
    this.current = text
    if (!interactive) return
    const now = performance.now()
    if (now - this.lastDraw < 100) return
    this.lastDraw = now
    this.draw()
  }

  /** A line to keep: printed above the status line on a terminal, as is otherwise. */
  log(line: string): void {
    if (interactive) {
      // The status that was showing is stale now: the next status() draws at once.
      stream.write(`\r\x1b[2K[${clock(this.elapsed())}] ${line}\n`)
      this.current = ""
      this.lastDraw = 0
    } else {
      stream.write(`[${clock(this.elapsed())}] ${line}\n`)
    }
  }

  /** Clears the status line for good. */
  done(): void {
    this.current = ""
    if (interactive) stream.write("\r\x1b[2K")
  }

  elapsed(): number {
    return (performance.now() - this.started) / 1000
  }

  private draw(): void {
    if (this.current === "") return
    const width = stream.columns ?? 120
    const line = `[${clock(this.elapsed())}] ${this.current}`
    stream.write(`\r\x1b[2K${line.length > width - 1 ? `${line.slice(0, width - 2)}…` : line}`)
  }
}
