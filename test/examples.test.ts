/**
 * The examples that are programs, run as the README says to run them, on the
 * stores they bring (in memory, PGlite): each exits 0 and prints what its
 * header says it prints. The other files of examples/readme are modules the
 * README quotes (MyStore.ts is only imported by contract.ts, a vitest file
 * whose suite test/InMemoryEventStore.test.ts runs on the same store);
 * `npm run typecheck` compiles them all. The examples that need a PostgreSQL
 * server run in test/postgres/examples.test.ts.
 */
import { describe, it } from "vitest"
import { runWithTsx } from "./support/example.js"

/**
 * PGlite boots in 4-10 s on a loaded machine, tsx compiles for a few more, and
 * the examples run side by side: on two busy cores one can take most of a
 * minute, so the kill comes late enough not to decide the test.
 */
const timeoutMillis = 100_000

interface PrintedSpan {
  readonly name: string | undefined
  readonly traceId: string | undefined
  readonly id: string | undefined
  /** The parent's span id; undefined for a root. */
  readonly parentId: string | undefined
}

/** The spans the console exporter printed, one `util.inspect` object each, its own fields indented by two spaces. */
const printedSpans = (stdout: string): ReadonlyArray<PrintedSpan> =>
  stdout
    .split(/^\}$/m)
    .filter((printed) => /^ {2}traceId: /m.test(printed))
    .map((printed) => ({
      name: /^ {2}name: '([^']+)'/m.exec(printed)?.[1],
      traceId: /^ {2}traceId: '(\w+)'/m.exec(printed)?.[1],
      id: /^ {2}id: '(\w+)'/m.exec(printed)?.[1],
      parentId: /^ {2}parentSpanContext: \{[^}]*^ {4}spanId: '(\w+)'/ms.exec(printed)?.[1]
    }))

describe.concurrent("examples/", { timeout: timeoutMillis + 20_000 }, () => {
  it("readme/transfer.ts prints the versions of both accounts after a deposit and a transfer", async ({ expect }) => {
    const run = await runWithTsx(["examples/readme/transfer.ts"], { timeoutMillis })
    expect(run, run.stderr).toMatchObject({ code: 0, stderr: "" })
    expect(run.stdout.trim()).toBe("Map(2) { 'account-alice' => 2, 'account-bob' => 1 }")
  })

  it("readme/snapshots.ts folds a long account in full once, then only the events after its snapshot", async ({
    expect
  }) => {
    const run = await runWithTsx(["examples/readme/snapshots.ts"], { timeoutMillis })
    expect(run, run.stderr).toMatchObject({ code: 0, stderr: "" })
    expect(run.stdout.trim()).toBe("folded 500 events, then 2")
  })

  it("readme/personalData.ts reads the holder's name back, never stores it in the clear, and reads it erased after the erasure", async ({
    expect
  }) => {
    const run = await runWithTsx(["examples/readme/personalData.ts"], { timeoutMillis })
    expect(run, run.stderr).toMatchObject({ code: 0, stderr: "" })
    const lines = run.stdout.trim().split("\n")
    expect(lines[0]).toBe("the name stored in the clear: false")
    expect(run.stdout).toContain("holder: 'Maria Sousa'")
    expect(run.stdout).toContain("erased: a-17 by dpo@bank.example")
    expect(run.stdout).toContain("holder: { '$erased': { subject: 'a-17' } }")
    expect(lines.at(-1)).toBe("deposit after erasure: version 2")
  })

  it("opentelemetry.ts prints the transfer's four spans, one trace under eventcore.execute", async ({ expect }) => {
    const run = await runWithTsx(["examples/opentelemetry.ts"], { timeoutMillis })
    expect(run, run.stderr).toMatchObject({ code: 0, stderr: "" })
    const spans = printedSpans(run.stdout)
    expect(spans.map((span) => span.name).sort()).toEqual([
      "eventcore.append",
      "eventcore.execute",
      "eventcore.read_stream",
      "eventcore.read_stream"
    ])
    const root = spans.find((span) => span.name === "eventcore.execute")
    expect(root).toMatchObject({ id: expect.stringMatching(/^\w+$/), parentId: undefined })
    for (const span of spans.filter((span) => span !== root)) {
      expect(span).toMatchObject({ traceId: root?.traceId, parentId: root?.id })
    }
    expect(run.stdout).toMatch(/^ {4}'eventcore\.command': 'Transfer',$/m)
    expect(run.stdout).toContain('message="transfer appended 2 events in 1 attempt(s)"')
  })
})

// After the others, alone: it opens two PGlite stores one after the other, the first creating its directory.
describe("examples/evolution/", () => {
  it("main.ts runs a bank's third release over its first release's events", {
    timeout: 2 * timeoutMillis + 20_000
  }, async ({ expect }) => {
    const run = await runWithTsx(["examples/evolution/main.ts"], { timeoutMillis: 2 * timeoutMillis })
    expect(run, run.stderr).toMatchObject({ code: 0, stderr: "" })
    expect(run.stdout.trim().split("\n")).toEqual([
      "alice withdrawing EUR 10.00 after release 1's deposits, and release 3's: refused, balance EUR 5.00",
      "read model, rebuilt over both releases' events:",
      "  alice Alice EUR 5.00",
      "  bob Bob EUR 20.00 USD 5.00",
      "  carol Carol EUR 7.00",
      "stored events, as release 3 reads them (EventSchema.check):",
      "  AccountCreated v1 x2: decoded",
      "  AccountOpened v1 x1: decoded",
      "  MoneyDeposited v1 x3: decoded",
      "  MoneyDeposited v3 x3: decoded",
      "  MoneyWithdrawn v1 x1: decoded",
      "the same events, as release 1 would read them after a rollback:",
      "  AccountCreated v1 x2: decoded",
      "  AccountOpened v1 x1: unknown",
      "  MoneyDeposited v1 x3: decoded",
      "  MoneyDeposited v3 x3: failed",
      "  MoneyWithdrawn v1 x1: unknown",
      "everything as expected"
    ])
  })
})
