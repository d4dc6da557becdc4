/**
 * The command line's tables: columns two spaces apart, each as wide as its
 * widest cell, the last one (free text) never padded unless right-aligned.
 */

/**
 * Lines of a table padded to `widths`: the columns numbered in `right`
 * right-aligned, the others left-aligned.
 */
export const aligned = (
  rows: ReadonlyArray<ReadonlyArray<string>>,
  widths: ReadonlyArray<number>,
  right: ReadonlyArray<number> = []
) =>
  rows.map((cells) =>
    cells
      .map((cell, i) =>
        right.includes(i) ? cell.padStart(widths[i] ?? 0) : i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)
      )
      .join("  ")
  )

/** The width of each column: its widest cell, or `atLeast` that column's. */
export const widthsOf = (rows: ReadonlyArray<ReadonlyArray<string>>, atLeast: ReadonlyArray<number> = []) =>
  rows.reduce<ReadonlyArray<number>>(
    (widths, cells) => cells.map((cell, i) => Math.max(widths[i] ?? 0, cell.length)),
    atLeast
  )

/** A table under `header`, the columns named in `right` right-aligned (numbers). */
export const table = (
  header: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
  right: ReadonlyArray<string> = []
): ReadonlyArray<string> => {
  const lines = [header, ...rows]
  return aligned(
    lines,
    widthsOf(lines),
    right.map((title) => header.indexOf(title))
  )
}

/** One line, whatever the text holds. */
export const oneLine = (text: string) => text.replace(/\s*\n\s*/g, " ")
