// The snapshot load statement before (f902038) and after (8763349) "Snapshot load planned below
// jit_above_cost", prepared on one connection: time per load, generic vs custom plans the plan cache
// chose, a custom plan's cost and planning time, the generic plan's cost.
//   many   500 streams of 10 events (W13's shortest pool): 3,000 loads per round
//   few    3 streams of 100,000 events and 16 of 100 (the few-long-streams case): 20 loads per round
// Each stream has a snapshot 5 events short of its end, as W13's commands meet them.
// Run from a directory whose node_modules is eventcore's, with the tree of f902038 at OLD:
//   git archive f902038 | tar -x -C /tmp/w13-old
//   OLD=/tmp/w13-old NEW=/work/main npx tsx --tsconfig $NEW/tsconfig.json load-probe.mts many|few
import { Effect } from "effect"
import postgres from "postgres"

const [oldTree, newTree] = [process.env.OLD ?? "/tmp/w13-old", process.env.NEW ?? "/work/main"]
const { PostgresEventStore } = await import(`${newTree}/src/index.ts`)
const before = (await import(`${oldTree}/src/sql/statements.ts`)).snapshotStatements("eventcore").load as string
const after = (await import(`${newTree}/src/sql/statements.ts`)).snapshotStatements("eventcore").load as string

const shape = process.argv[2] === "few" ? "few" : "many"
const base = process.env.SERVER ?? "postgres://postgres@127.0.0.1:5432/"
const db = `w13probe_${process.pid}`
const admin = postgres(`${base}postgres`, { max: 1, onnotice: () => {} })
await admin.unsafe(`create database ${db}`)
try {
  await Effect.runPromise(PostgresEventStore.migrate({ url: base + db }))
  const sql = postgres(base + db, { max: 1, onnotice: () => {}, fetch_types: false })
  const textArray = (values: ReadonlyArray<string>) => `{${values.map((v) => `"${v}"`).join(",")}}`
  // Events $3..$4 of each stream of $1, at version $3 - 1: an AccountOpened first, deposits after it.
  const append = `select eventcore.append(jsonb_build_object(
  'streams', (select jsonb_agg(jsonb_build_object('id', s, 'expected', $2::int - 1)) from unnest($1::text[]) s),
  'events', (select jsonb_agg(jsonb_build_object('stream', s, 'id', gen_random_uuid(),
      'type', case when g = 1 then 'AccountOpened' else 'MoneyDeposited' end,
      'data', case when g = 1 then jsonb_build_object('owner', s) else jsonb_build_object('amount', 1000) end,
      'metadata', '{}'::jsonb) order by s, g)
    from unnest($1::text[]) s, generate_series($2::int, $3::int) g)))`
  const length = shape === "few" ? 100_000 : 10
  const streams = Array.from({ length: shape === "few" ? 3 : 500 }, (_, i) => `account-p${i}`)
  for (let first = 1; first <= length; first += 10_000)
    await sql.unsafe(append, [textArray(streams), first, Math.min(length, first + 9_999)])
  if (shape === "few") await sql.unsafe(append, [textArray(Array.from({ length: 16 }, (_, i) => `account-q${i}`)), 1, 100])
  for (const s of streams)
    await sql.unsafe(
      `insert into eventcore.snapshots (command, key, state_version, event_versions, streams, covered, state)
       values ('Deposit', $1, 1, 'fp', $2::text::jsonb, $3, '{"accounts":[]}'::jsonb)`,
      [`key-${s}`, JSON.stringify([[s, length - 5]]), length - 5]
    )
  await sql.unsafe("vacuum analyze eventcore.events")
  await sql.unsafe("analyze eventcore.snapshots")
  const variants = [
    ["before", before, (s: string) => JSON.stringify([s])],
    ["after", after, (s: string) => textArray([s])]
  ] as const
  const loads = shape === "few" ? 20 : 3_000
  console.log(`${shape}: ${streams.length} streams of ${length} events${shape === "few" ? " and 16 of 100" : ""}`)
  for (const round of [1, 2]) {
    for (const [name, text, streamsParam] of variants) {
      const t0 = performance.now()
      for (let i = 0; i < loads; i++) {
        const s = streams[i % streams.length] as string
        await sql.unsafe(text, ["Deposit", `key-${s}`, 1, "fp", streamsParam(s)], { prepare: true })
      }
      const perLoad = (performance.now() - t0) / loads
      const [plans] = await sql.unsafe("select generic_plans, custom_plans from pg_prepared_statements where statement = $1", [text])
      console.log(`round ${round} ${name}: ${(perLoad * 1000).toFixed(0)} µs per load (${loads}); plans so far ${JSON.stringify(plans)}`)
    }
  }
  for (const [name, text, streamsParam] of variants) {
    const s = streams[1] as string
    await sql.unsafe(`prepare p_${name}(text, text, int, text, text) as ${text}`)
    const args = `'Deposit', 'key-${s}', 1, 'fp', '${streamsParam(s)}'`
    await sql.unsafe("set plan_cache_mode = force_custom_plan")
    const [custom] = await sql.unsafe(`explain (analyze, summary, format json) execute p_${name}(${args})`)
    await sql.unsafe("set plan_cache_mode = force_generic_plan")
    const [generic] = await sql.unsafe(`explain (format json) execute p_${name}(${args})`)
    await sql.unsafe("reset plan_cache_mode")
    const c = (custom as any)["QUERY PLAN"][0]
    const g = (generic as any)["QUERY PLAN"][0]
    console.log(
      `${name}: custom plan cost ${c.Plan["Total Cost"]} (rows ${c.Plan["Plan Rows"]}), planning ${c["Planning Time"]} ms, execution ${c["Execution Time"]} ms${c.JIT ? ", JIT" : ""}; generic plan cost ${g.Plan["Total Cost"]} (rows ${g.Plan["Plan Rows"]})`
    )
  }
  await sql.end()
} finally {
  await admin.unsafe(`drop database ${db} with (force)`)
  await admin.end()
}
