/**
 * The README's code is real code: every TypeScript block in it (and in
 * docs/testing.md, evolution.md and snapshots.md) is a run of lines of a file that `npm run typecheck` compiles, named by the comment
 * `<!-- code: PATH -->` on the line before the block. Here each block is
 * found in its file (indentation aside), so the README cannot drift from code
 * that compiles.
 */
import { existsSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))

interface Block {
  readonly line: number
  readonly source: string | undefined
  readonly lines: ReadonlyArray<string>
}

const blocksOf = (markdown: string): ReadonlyArray<Block> => {
  const lines = markdown.split("\n")
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== "```ts") continue
    const end = lines.findIndex((line, j) => j > i && line.trim() === "```")
    const marker = /^<!-- code: (\S+) -->$/.exec(lines[i - 1]?.trim() ?? "")
    blocks.push({ line: i + 1, source: marker?.[1], lines: lines.slice(i + 1, end) })
    i = end
  }
  return blocks
}

/** The lines without the indentation they share, trailing spaces and blank lines at the ends. */
const dedented = (lines: ReadonlyArray<string>): ReadonlyArray<string> => {
  const trimmed = lines.map((line) => line.trimEnd())
  const indent = Math.min(...trimmed.filter((line) => line !== "").map((line) => line.length - line.trimStart().length))
  return trimmed.map((line) => line.slice(indent))
}

const contains = (file: ReadonlyArray<string>, block: ReadonlyArray<string>): boolean => {
  const wanted = dedented(block).join("\n")
  for (let start = 0; start + block.length <= file.length; start++) {
    if (dedented(file.slice(start, start + block.length)).join("\n") === wanted) return true
  }
  return false
}

/** The README, and the documents whose TypeScript blocks all name their file. */
const documents = ["README.md", "docs/testing.md", "docs/evolution.md", "docs/snapshots.md"]

describe.each(documents)("%s", (document) => {
  const blocks = blocksOf(readFileSync(`${root}/${document}`, "utf8"))

  it("has TypeScript blocks to check", () => {
    expect(blocks.length).toBeGreaterThan(0)
  })

  it.each(blocks.map((block) => [block.line, block] as const))(
    "the block at line %i is code that compiles",
    (_, block) => {
      expect(block.source, "a <!-- code: PATH --> line before the block names its file").toBeDefined()
      const path = `${root}/${block.source}`
      expect(existsSync(path), `${block.source} exists`).toBe(true)
      const file = readFileSync(path, "utf8").split("\n")
      expect(contains(file, block.lines), `the block is a run of lines of ${block.source}`).toBe(true)
    }
  )
})
