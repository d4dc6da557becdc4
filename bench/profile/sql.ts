/**
 * The SQL side of the PostgreSQL store, profiled on a scratch database:
 *
 *  1. the nested plans of one `eventcore.append` call (auto_explain with
 *     log_nested_statements, sent back as NOTICEs): every lookup should be an
 *     index probe, and stay one, whatever the table sizes;
 *  2. EXPLAIN (ANALYZE, BUFFERS) of the store's read statement and of the raw SELECT;
 *  3. the server-side cost of one append as the number of streams grows, against
 *     the raw INSERT ... SELECT, one connection, synchronous_commit off so that
 *     the commit flush does not hide the CPU cost: a cost that grows with the
 *     table is a plan that scans it.
 *
 *   npx tsx bench/profile/sql.ts [--levels 1000,10000,30000,60000,100000] [--appends 300] [--plans]
 */
import { performance } from "node:perf_hooks"
import { parseArgs } from "node:util"
import { Effect } from "effect"
import { EventStore, PostgresEventStore, StreamId, StreamWrites } from "eventcore"
import postgres from "postgres"
import { adminOf } from "../lib/server.js"
import { rawSystem } from "../systems/raw.js"
import { benchEvent, benchEvents } from "../workloads/payload.js"

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    levels: { type: "string", default: "1000,10000,30000,60000,100000" },
    appends: { type: "string", default: "300" },
    plans: { type: "boolean", default: false }
  }
})
const serverUrl = values.url ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const levels = values.levels.split(",").map(Number)
const appends = Number(values.appends)

/** An append request as the store builds it (see SqlEventStore.append). */
const request = (streamId: string, expected: number | "no_stream", count = 1) =>
  JSON.stringify({
    streams: [{ id: streamId, expected }],
    events: benchEvents(count).map((event) => ({
      stream: streamId,
      id: crypto.randomUUID(),
      type: event.type,
      data: event.data,
      metadata: {}
    }))
  })

const admin = adminOf(serverUrl)
const url = await admin.create(`eventcore_profile_${process.pid}`)
const notices: Array<string> = []
const sql = postgres(url, { max: 1, onnotice: (notice) => notices.push(notice.message ?? "") })

try {
  await Effect.runPromise(PostgresEventStore.migrate({ url }))
  await (await rawSystem(url, 1)).close()
  await sql`set synchronous_commit = off`

  // --- 1. nested plans of one append --------------------------------------
  await sql`insert into eventcore.events (event_id, stream_id, stream_version, event_type, data)
            select gen_random_uuid(), 'seed-' || g, 1, 'Seeded', '{}'::jsonb from generate_series(1, 10000) g`
  await sql`analyze`
  await sql`load 'auto_explain'`
  await sql`set auto_explain.log_min_duration = 0`
  await sql`set auto_explain.log_analyze = on`
  await sql`set auto_explain.log_buffers = on`
  await sql`set auto_explain.log_nested_statements = on`
  await sql`set auto_explain.log_level = notice`
  console.log("## 1. One eventcore.append to an existing stream (10,000 streams), nested statements\n")
  // Warm the function's plan cache first (plans are cached per session, and
  // plpgsql may switch to a generic plan after five executions).
  await sql`set auto_explain.log_min_duration = -1`
  for (let i = 0; i < 8; i++) await sql`select eventcore.append(${request(`warm-${i}`, "no_stream")}::text::jsonb)`
  await sql`set auto_explain.log_min_duration = 0`
  notices.length = 0
  await sql`select eventcore.append(${request("seed-17", 1)}::text::jsonb)`
  for (const notice of notices) {
    const duration = /duration: ([\d.]+) ms/.exec(notice)?.[1]
    const text =
      /Query Text: ([\s\S]*?)\n(?=[A-Z][a-zA-Z ]+ {2}\(cost|Result|Limit|Aggregate|Insert|Sort|Hash|Nested)/.exec(
        notice
      )?.[1]
    const scans = [
      ...notice.matchAll(
        /(Seq Scan|Index Scan|Index Only Scan|Function Scan)[^\n]*?on (\w+)[^\n]*?actual time=[\d.]+\.\.([\d.]+) rows=(\d+)/g
      )
    ]
      .filter((m) => m[1] !== "Function Scan")
      .map((m) => `${m[1]} on ${m[2]} (${m[4]} rows, ${m[3]} ms)`)
    const first = (text ?? notice.split("\n")[1] ?? "").replace(/\s+/g, " ").slice(0, 90)
    console.log(`- ${duration} ms: \`${first}\`${scans.length > 0 ? ` — ${scans.join(", ")}` : ""}`)
    if (values.plans) console.log(`\n\`\`\`\n${notice}\n\`\`\`\n`)
  }
  console.log("")
  await sql`set auto_explain.log_min_duration = -1`

  // --- 2. the read statement ---------------------------------------------
  const readSize = 1000
  const readStreamId = StreamId.unsafeMake("read-1000")
  await Effect.runPromise(
    Effect.gen(function* () {
      const store = yield* EventStore.EventStore
      let writes = yield* StreamWrites.expect(StreamWrites.empty, readStreamId, "no_stream")
      for (const event of benchEvents(readSize)) {
        writes = yield* StreamWrites.append(writes, { streamId: readStreamId, eventType: event.type, data: event.data })
      }
      yield* store.append(writes)
    }).pipe(Effect.provide(PostgresEventStore.layer({ url, maxConnections: 1 })))
  )
  await sql`insert into bench_raw_events (event_id, stream_id, stream_version, event_type, data)
            select gen_random_uuid(), stream_id, stream_version, event_type, data
            from eventcore.events where stream_id = ${readStreamId}`
  await sql`vacuum analyze`
  let readSql = ""
  let readParams: ReadonlyArray<string | number> = []
  const spy = postgres(url, {
    max: 1,
    onnotice: () => {},
    debug: (_connection, query, parameters) => {
      // The read is the statement that carries the stream's id (the layer sends others as it starts).
      if (readSql !== "" || !(parameters as ReadonlyArray<unknown>).includes(readStreamId)) return
      readSql = query
      readParams = parameters as ReadonlyArray<string | number>
    }
  })
  await Effect.runPromise(
    Effect.flatMap(EventStore.EventStore, (store) => store.readStream(readStreamId)).pipe(
      Effect.provide(PostgresEventStore.layerFromClient(spy))
    )
  )
  await spy.end()
  console.log(`## 2. Reading a ${readSize}-event stream\n`)
  const explain = async (label: string, text: string, params: ReadonlyArray<string | number>) => {
    await sql.unsafe(`prepare q as ${text}`)
    const rows = await sql.unsafe(
      `explain (analyze, buffers) execute q(${params.map((p) => (typeof p === "number" ? p : `'${p}'`)).join(", ")})`
    )
    await sql`deallocate q`
    console.log(
      `### ${label}\n\n\`\`\`\n${text.replace(/\s+/g, " ")}\n\n${rows.map((r) => r["QUERY PLAN"]).join("\n")}\n\`\`\`\n`
    )
  }
  await explain("the store's read statement (readStream's, as it sends it)", readSql, readParams)
  await explain(
    "raw SELECT",
    "select event_id, stream_version, global_position, event_type, data, metadata, recorded_at from bench_raw_events where stream_id = $1 order by stream_version",
    [readStreamId]
  )

  // --- 3. append cost as streams accumulate -------------------------------
  // A database of its own, so that the first level really is small.
  const scaleUrl = await admin.create(`eventcore_profile_${process.pid}_scale`)
  const scale = postgres(scaleUrl, { max: 1, onnotice: () => {} })
  await Effect.runPromise(PostgresEventStore.migrate({ url: scaleUrl }))
  await (await rawSystem(scaleUrl, 1)).close()
  await scale`set synchronous_commit = off`
  console.log(
    "## 3. Cost of one append as streams accumulate (µs per call incl. the round trip, prepared statements, 1 connection, synchronous_commit off, best of 2)\n"
  )
  console.log(
    "| streams | eventcore.append, new stream | raw, new stream | eventcore.append, existing | raw, existing |"
  )
  console.log("| ---: | ---: | ---: | ---: | ---: |")
  let seeded = 0
  let fresh = 0
  const time = async (run: () => Promise<unknown>) => {
    for (let i = 0; i < 20; i++) await run() // warm-up
    const started = performance.now()
    for (let i = 0; i < appends; i++) await run()
    return ((performance.now() - started) * 1000) / appends
  }
  const rawAppend = async (id: string, version: number) => {
    const data = JSON.stringify([
      { id: crypto.randomUUID(), type: "OrderPlaced", data: benchEvent().data, metadata: {} }
    ])
    await scale`insert into bench_raw_events (event_id, stream_id, stream_version, event_type, data, metadata)
      select (e.value->>'id')::uuid, ${id}, ${version}::int + e.n::int, e.value->>'type', e.value->'data', e.value->'metadata'
      from jsonb_array_elements(${data}::text::jsonb) with ordinality as e(value, n)
      where (select coalesce(max(stream_version), 0) from bench_raw_events where stream_id = ${id}) = ${version}
      returning global_position`
  }
  const versions = { store: new Map<string, number>(), raw: new Map<string, number>() }
  for (const level of levels) {
    if (level > seeded) {
      for (const table of ["eventcore.events", "bench_raw_events"]) {
        await scale.unsafe(
          `insert into ${table} (event_id, stream_id, stream_version, event_type, data)
           select gen_random_uuid(), 'seed-' || g, 1, 'Seeded', '{}'::jsonb from generate_series($1::int, $2::int) g`,
          [seeded + 1, level]
        )
      }
      seeded = level
    }
    await scale`vacuum analyze`
    const existing = (system: "store" | "raw") => async () => {
      const id = `seed-${1 + Math.floor(Math.random() * level)}`
      const version = versions[system].get(id) ?? 1
      if (system === "raw") await rawAppend(id, version)
      else await scale`select eventcore.append(${request(id, version)}::text::jsonb)`
      versions[system].set(id, version + 1)
    }
    const created = (system: "store" | "raw") => async () => {
      const id = `new-${fresh++}`
      if (system === "raw") await rawAppend(id, 0)
      else await scale`select eventcore.append(${request(id, "no_stream")}::text::jsonb)`
    }
    const cells: Array<number> = []
    for (const make of [created, existing]) {
      for (const system of ["store", "raw"] as const) {
        cells.push(Math.min(await time(make(system)), await time(make(system))))
      }
    }
    console.log(`| ${level.toLocaleString("en")} | ${cells.map((c) => c.toFixed(0)).join(" | ")} |`)
  }
  await scale.end({ timeout: 5 })
  console.log("")
} finally {
  await sql.end({ timeout: 5 })
  await admin.close()
}
