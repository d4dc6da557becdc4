#!/usr/bin/env bash
# Installs the packed package into a scratch project, as a user would, and runs
# the public contract suite from "eventcore/testing" against "eventcore"'s
# in-memory store, type-checking the consumer's code against the shipped .d.ts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cd "$root"
npm run -s build
tarball="$scratch/$(npm pack --silent --pack-destination "$scratch" | tail -n 1)"

cd "$scratch"
cat > package.json <<'JSON'
{
  "name": "consumer", "private": true, "type": "module",
  "overrides": { "@effect/vitest": { "vitest": "$vitest" } }
}
JSON
versions=$(node -e '
  const p = require(process.argv[1]);
  const all = { ...p.dependencies, ...p.devDependencies };
  console.log(["effect", "vitest", "@effect/vitest", "fast-check", "typescript", "@types/node"].map((n) => `${n}@${all[n]}`).join(" "));
' "$root/package.json")
# shellcheck disable=SC2086
npm install --no-audit --no-fund --loglevel=error "$tarball" $versions

cat > consumer.test.ts <<'TS'
import { InMemoryEventStore, StreamId } from "eventcore"
import { runEventStoreContract } from "eventcore/testing"

StreamId.unsafeMake("consumer-check")
runEventStoreContract("consumer: InMemoryEventStore", () => InMemoryEventStore.layer, { propertyRuns: 10 })
TS
cat > tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext", "strict": true,
    "exactOptionalPropertyTypes": true, "skipLibCheck": true, "noEmit": true, "types": ["node"]
  },
  "include": ["consumer.test.ts"]
}
JSON
npx tsc -p .
npx vitest run --reporter=dot consumer.test.ts

# The command line, as installed from the package.
npx --no-install eventcore demo --accounts 3 --transfers 20 --concurrency 2 | tail -n 1 | grep -qx "all invariants hold"
npx --no-install eventcore streams --help > /dev/null
echo "eventcore bin: demo passed its invariant check"
