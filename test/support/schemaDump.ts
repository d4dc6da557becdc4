/**
 * docs/schema.sql: the store's schema as the last migration leaves it, read
 * back from the catalog of a database eventcore's migrator has migrated. The
 * migrations restate a function whole each time they change it; this is the
 * one place that shows what runs today. Written by `npm run db:schema`
 * (writeSchema.ts); test/schema.test.ts fails when it differs from what the
 * migrations make.
 *
 * Every piece comes from the catalog (PostgreSQL's own `pg_get_*def`
 * functions, formatted types and expressions), in an order that does not
 * depend on OIDs, so two migrated databases of one PostgreSQL major version
 * give the same text.
 */
import { PGlite } from "@electric-sql/pglite"
import { Effect } from "effect"
import { PgliteEventStore } from "eventcore"
import { shippedMigrations } from "./migrations.js"

export const schemaFile = new URL("../../docs/schema.sql", import.meta.url)

/** Runs one statement with `$1`-style parameters, giving its rows as objects (PGlite's and postgres.js's shape). */
export type Query = (
  statement: string,
  params: ReadonlyArray<unknown>
) => Promise<ReadonlyArray<Record<string, unknown>>>

export const queryOn =
  (client: PGlite): Query =>
  async (statement, params) =>
    (await client.query<Record<string, unknown>>(statement, [...params])).rows

/** A fresh in-memory PGlite with eventcore's migrations applied to the default schema, `eventcore`. */
export const migratedPglite = async (): Promise<PGlite> => {
  const client = await PGlite.create()
  await Effect.runPromise(PgliteEventStore.migrate(client))
  return client
}

/** The store's default schema, the one docs/schema.sql shows: every query below takes its name as `$1`. */
const schema = "eventcore"

/** The schema's oid, in the queries below; they give text columns. */
const inSchema = "(select oid from pg_namespace where nspname = $1)"

/**
 * A sequence's options that differ from those of a new ascending sequence of
 * its type (the rest are left out, as one would write them by hand).
 */
const sequenceOptions = `concat_ws(' ',
    case when s.seqincrement <> 1 then 'INCREMENT BY ' || s.seqincrement end,
    case when s.seqmin <> 1 then 'MINVALUE ' || s.seqmin end,
    case when s.seqmax <> case s.seqtypid when 'int2'::regtype then 32767 when 'int4'::regtype then 2147483647
                                          else 9223372036854775807 end
         then 'MAXVALUE ' || s.seqmax end,
    case when s.seqstart <> s.seqmin then 'START WITH ' || s.seqstart end,
    case when s.seqcache <> 1 then 'CACHE ' || s.seqcache end,
    case when s.seqcycle then 'CYCLE' end)`

/**
 * What this dump does not render; a migration that creates one fails the
 * test here, instead of leaving it out of docs/schema.sql unnoticed.
 */
const unrendered = `
  select format('%s (%s)', pg_describe_object('pg_class'::regclass, c.oid, 0),
                concat_ws(', ', case when c.relkind not in ('r', 'v', 'S', 'i') then 'its kind' end,
                          case when c.relpersistence <> 'p' then 'unlogged or temporary' end,
                          case when c.relispartition then 'a partition' end,
                          case when c.relrowsecurity then 'row-level security' end,
                          case when c.relkind <> 'i' and c.reloptions is not null then 'storage options' end)) as object
  from pg_class c
  where c.relnamespace = ${inSchema}
    and (c.relkind not in ('r', 'v', 'S', 'i') or c.relpersistence <> 'p' or c.relispartition or c.relrowsecurity
         or (c.relkind <> 'i' and c.reloptions is not null))
  union all
  select pg_describe_object('pg_proc'::regclass, p.oid, 0) from pg_proc p
  where p.pronamespace = ${inSchema} and p.prokind = 'a'
  union all
  select pg_describe_object('pg_type'::regclass, t.oid, 0) from pg_type t
  where t.typnamespace = ${inSchema} and t.typrelid = 0
    and not exists (select from pg_type row_type where row_type.typarray = t.oid and row_type.typrelid <> 0)
  union all
  select pg_describe_object('pg_policy'::regclass, p.oid, 0) from pg_policy p join pg_class c on c.oid = p.polrelid
  where c.relnamespace = ${inSchema}
  union all
  select pg_describe_object('pg_rewrite'::regclass, r.oid, 0) from pg_rewrite r join pg_class c on c.oid = r.ev_class
  where c.relnamespace = ${inSchema} and r.rulename <> '_RETURN'
  union all
  select pg_describe_object('pg_class'::regclass, i.inhrelid, 0) || ' (inherits)' from pg_inherits i
  join pg_class c on c.oid = i.inhrelid where c.relnamespace = ${inSchema}
  union all
  select pg_describe_object('pg_trigger'::regclass, t.oid, 0) || ' (not enabled as usual)' from pg_trigger t
  join pg_class c on c.oid = t.tgrelid where c.relnamespace = ${inSchema} and not t.tgisinternal and t.tgenabled <> 'O'
  union all
  select pg_describe_object('pg_class'::regclass, a.attrelid, a.attnum) || ' (column privileges)' from pg_attribute a
  join pg_class c on c.oid = a.attrelid where c.relnamespace = ${inSchema} and a.attacl is not null
  union all
  select pg_describe_object('pg_statistic_ext'::regclass, s.oid, 0) from pg_statistic_ext s
  where s.stxnamespace = ${inSchema}
  union all
  select pg_describe_object('pg_extension'::regclass, e.oid, 0) from pg_extension e where e.extnamespace = ${inSchema}
  union all
  select 'default privileges in the schema' from pg_default_acl d where d.defaclnamespace = ${inSchema}
  order by 1`

const sequences = `
  select format('CREATE SEQUENCE %s%s%s;', c.oid::regclass,
                case when s.seqtypid <> 'int8'::regtype then ' AS ' || format_type(s.seqtypid, null) end,
                nullif(' ' || ${sequenceOptions}, ' ')) as statement,
         (select format('ALTER SEQUENCE %s OWNED BY %s.%I;', c.oid::regclass, d.refobjid::regclass, a.attname)
          from pg_depend d join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
          where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.refclassid = 'pg_class'::regclass
            and d.deptype = 'a') as owned_by,
         (select d.refobjid::regclass::text from pg_depend d
          where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.refclassid = 'pg_class'::regclass
            and d.deptype = 'a') as table_name
  from pg_class c join pg_sequence s on s.seqrelid = c.oid
  where c.relnamespace = ${inSchema}
    and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'i')
  order by c.relname`

const tables = `
  select c.oid::regclass::text as name from pg_class c
  where c.relnamespace = ${inSchema} and c.relkind = 'r' order by c.relname`

const columns = `
  select c.oid::regclass::text as table_name, quote_ident(a.attname) as name,
         concat_ws(' ',
           format_type(a.atttypid, a.atttypmod),
           case when a.attcollation <> t.typcollation then 'COLLATE ' || a.attcollation::regcollation end,
           case when a.attidentity <> '' then
             format('GENERATED %s AS IDENTITY (SEQUENCE NAME %s%s)',
                    case a.attidentity when 'a' then 'ALWAYS' else 'BY DEFAULT' end, s.seqrelid::regclass,
                    nullif(' ' || ${sequenceOptions}, ' '))
           end,
           case a.attgenerated when 's' then format('GENERATED ALWAYS AS (%s) STORED', pg_get_expr(d.adbin, d.adrelid))
                               when 'v' then format('GENERATED ALWAYS AS (%s) VIRTUAL', pg_get_expr(d.adbin, d.adrelid))
                               else 'DEFAULT ' || pg_get_expr(d.adbin, d.adrelid) end,
           case when a.attnotnull then 'NOT NULL' end) as definition
  from pg_class c
  join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  join pg_type t on t.oid = a.atttypid
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
  left join pg_sequence s on a.attidentity <> ''
    and s.seqrelid = pg_get_serial_sequence(c.oid::regclass::text, a.attname)::regclass
  where c.relnamespace = ${inSchema} and c.relkind = 'r'
  order by c.relname, a.attnum`

/** Primary keys, unique, check and exclusion constraints, shown in their table; foreign keys come later. */
const tableConstraints = `
  select k.conrelid::regclass::text as table_name, format('CONSTRAINT %I %s', k.conname, pg_get_constraintdef(k.oid, true)) as definition
  from pg_constraint k join pg_class c on c.oid = k.conrelid
  where c.relnamespace = ${inSchema} and k.contype in ('p', 'u', 'x', 'c')
  order by c.relname, array_position(array['p', 'u', 'x', 'c']::"char"[], k.contype), k.conname`

/** Indexes of their own: those of primary keys and unique or exclusion constraints are their constraints. */
const indexes = `
  select pg_get_indexdef(i.indexrelid) || ';' as statement
  from pg_index i join pg_class c on c.oid = i.indexrelid join pg_class t on t.oid = i.indrelid
  where c.relnamespace = ${inSchema}
    and not exists (select from pg_constraint k where k.conindid = i.indexrelid and k.conrelid = i.indrelid
                    and k.contype in ('p', 'u', 'x'))
  order by t.relname, c.relname`

const foreignKeys = `
  select format('ALTER TABLE %s ADD CONSTRAINT %I %s;', k.conrelid::regclass, k.conname, pg_get_constraintdef(k.oid, true)) as statement
  from pg_constraint k join pg_class c on c.oid = k.conrelid
  where c.relnamespace = ${inSchema} and k.contype = 'f'
  order by c.relname, k.conname`

const views = `
  select format(E'CREATE VIEW %s AS\\n%s', c.oid::regclass, pg_get_viewdef(c.oid, true)) as statement
  from pg_class c where c.relnamespace = ${inSchema} and c.relkind = 'v' order by c.relname`

const functions = `
  select rtrim(pg_get_functiondef(p.oid), E'\\n') || ';' as statement
  from pg_proc p where p.pronamespace = ${inSchema}
  order by p.proname, pg_get_function_identity_arguments(p.oid)`

/** Triggers of the schema's tables; those PostgreSQL keeps for foreign keys are their constraints. */
const triggers = `
  select pg_get_triggerdef(t.oid, true) || ';' as statement
  from pg_trigger t join pg_class c on c.oid = t.tgrelid
  where c.relnamespace = ${inSchema} and not t.tgisinternal
  order by c.relname, t.tgname`

/**
 * Privileges as changes to PostgreSQL's defaults for each object (its owner
 * holds every privilege; PUBLIC may execute functions and nothing else), the
 * way they were made: REVOKE what a default grants and the object lacks, GRANT
 * what it has beyond them. The owner is the role that ran the migrations.
 */
const privileges = `
  with objects as (
    select 1 as kind_order, 'SCHEMA' as kind, quote_ident(n.nspname) as name, n.nspacl as acl,
           acldefault('n', n.nspowner) as defaults, n.nspowner as owner
    from pg_namespace n where n.oid = ${inSchema}
    union all
    select 2, case c.relkind when 'S' then 'SEQUENCE' else 'TABLE' end, c.oid::regclass::text, c.relacl,
           acldefault((case c.relkind when 'S' then 's' else 'r' end)::"char", c.relowner), c.relowner
    from pg_class c where c.relnamespace = ${inSchema} and c.relkind in ('r', 'v', 'S')
    union all
    select 3, 'FUNCTION', p.oid::regprocedure::text, p.proacl, acldefault('f', p.proowner), p.proowner
    from pg_proc p where p.pronamespace = ${inSchema}
  ), changes as (
    select o.*, 'REVOKE' as action, a.grantee, a.privilege_type, false as is_grantable
    from objects o, lateral (
      select d.grantee, d.privilege_type from aclexplode(o.defaults) d
      except select g.grantee, g.privilege_type from aclexplode(o.acl) g) a
    where o.acl is not null
    union all
    select o.*, 'GRANT', a.grantee, a.privilege_type, a.is_grantable
    from objects o, lateral (
      select g.grantee, g.privilege_type, g.is_grantable from aclexplode(o.acl) g
      except select d.grantee, d.privilege_type, d.is_grantable from aclexplode(o.defaults) d) a
    where o.acl is not null
  )
  select format('%s %s ON %s %s %s %s%s;', action, string_agg(privilege_type, ', ' order by privilege_type), kind, name,
                case action when 'GRANT' then 'TO' else 'FROM' end,
                case when grantee = 0 then 'PUBLIC' when grantee = owner then 'CURRENT_USER'
                     else quote_ident(pg_get_userbyid(grantee)) end,
                case when is_grantable then ' WITH GRANT OPTION' else '' end) as statement
  from changes
  group by kind_order, kind, name, action, grantee, owner, is_grantable
  order by kind_order, name, action desc, 1`

/** Comments on the schema and its objects; functions by signature, the way GRANT names them. */
const comments = `
  select format('COMMENT ON %s %s IS %L;',
                case o.type when 'table column' then 'COLUMN' when 'view column' then 'COLUMN'
                            when 'table constraint' then 'CONSTRAINT' else upper(o.type) end,
                case d.classoid when 'pg_proc'::regclass then d.objoid::regprocedure::text
                                when 'pg_class'::regclass then o.identity
                                else replace(o.identity, ' on ', ' ON ') end,
                d.description) as statement
  from pg_description d cross join lateral pg_identify_object(d.classoid, d.objoid, d.objsubid) o
  where (d.classoid, d.objoid) in (
    select 'pg_namespace'::regclass, ${inSchema}
    union all select 'pg_class'::regclass, oid from pg_class where relnamespace = ${inSchema}
    union all select 'pg_proc'::regclass, oid from pg_proc where pronamespace = ${inSchema}
    union all select 'pg_constraint'::regclass, oid from pg_constraint where connamespace = ${inSchema}
    union all select 'pg_trigger'::regclass, t.oid from pg_trigger t join pg_class c on c.oid = t.tgrelid
              where c.relnamespace = ${inSchema})
  order by 1`

/** Aligns a table's column names, as one would by hand. */
const tableStatement = (
  name: string,
  columnsOf: ReadonlyArray<{ readonly name: string; readonly definition: string }>,
  constraintsOf: ReadonlyArray<string>
) => {
  const width = Math.max(...columnsOf.map((column) => column.name.length))
  const lines = [...columnsOf.map((column) => `${column.name.padEnd(width)}  ${column.definition}`), ...constraintsOf]
  return `CREATE TABLE ${name} (\n${lines.map((line) => `    ${line}`).join(",\n")}\n);`
}

/** One kind of object: a comment saying what it holds, then its statements in order. */
export interface Section {
  readonly kind: string
  readonly title: string
  readonly statements: ReadonlyArray<string>
}

export const renderSection = ({ title, statements }: Section): string =>
  `${title}\n\n${statements.length === 0 ? "-- (none)" : statements.join("\n\n")}`

/** The objects of the schema, kind by kind, in an order that builds them in an empty database. */
export const dumpSections = async (query: Query): Promise<ReadonlyArray<Section>> => {
  const rows = async (statement: string) =>
    (await query(statement, [schema])) as ReadonlyArray<Record<string, string | null>>
  const statements = async (statement: string) => (await rows(statement)).map((row) => String(row.statement))

  const missing = (await rows(unrendered)).map((row) => String(row.object))
  if (missing.length > 0) {
    throw new Error(
      `docs/schema.sql cannot show these objects of schema ${schema}: ${missing.join("; ")}. Teach test/support/schemaDump.ts to render them.`
    )
  }

  const sequenceRows = await rows(sequences)
  const columnRows = await rows(columns)
  const constraintRows = await rows(tableConstraints)
  const tableStatements = (await rows(tables)).map(({ name }) => {
    const table = String(name)
    const created = tableStatement(
      table,
      columnRows
        .filter((row) => row.table_name === table)
        .map((row) => ({ name: String(row.name), definition: String(row.definition) })),
      constraintRows.filter((row) => row.table_name === table).map((row) => String(row.definition))
    )
    const ownedSequences = sequenceRows.filter((row) => row.table_name === table).map((row) => String(row.owned_by))
    return [created, ...ownedSequences].join("\n")
  })

  return [
    {
      kind: "schema",
      title: "-- The schema: the migrator creates it before the first migration.",
      statements: await statements("select format('CREATE SCHEMA %I;', $1::text) as statement")
    },
    {
      kind: "sequences",
      title: [
        "-- Sequences other than identity columns' (those are shown with their columns); options at",
        "-- PostgreSQL's defaults are left out."
      ].join("\n"),
      statements: sequenceRows.map((row) => String(row.statement))
    },
    {
      kind: "tables",
      title: "-- Tables: columns in order, then primary keys, unique and check constraints.",
      statements: tableStatements
    },
    {
      kind: "indexes",
      title: "-- Indexes beyond those of primary keys and unique constraints.",
      statements: await statements(indexes)
    },
    {
      kind: "foreign keys",
      title: "-- Foreign keys, once the unique indexes they reference exist.",
      statements: await statements(foreignKeys)
    },
    { kind: "views", title: "-- Views.", statements: await statements(views) },
    { kind: "functions", title: "-- Functions, as they run.", statements: await statements(functions) },
    {
      kind: "triggers",
      title: "-- Triggers (those PostgreSQL keeps for foreign keys are left out).",
      statements: await statements(triggers)
    },
    {
      kind: "privileges",
      title: [
        "-- Privileges: what differs from PostgreSQL's defaults, under which the owner holds every privilege",
        "-- and PUBLIC may execute functions, nothing else. An application role gets its own grants as",
        "-- docs/security.md shows; a privilege of the owner's would name it CURRENT_USER."
      ].join("\n"),
      statements: await statements(privileges)
    },
    { kind: "comments", title: "-- Comments (COMMENT ON).", statements: await statements(comments) }
  ]
}

/** docs/schema.sql: what the schema holds, as SQL that builds it in an empty database, under a header saying so. */
export const dumpSchema = async (query: Query): Promise<string> => {
  const [server] = await query("select current_setting('server_version_num')::int / 10000 as major", [])
  const header = [
    `-- eventcore's schema as the last migration, ${shippedMigrations.at(-1)}, leaves it: every`,
    "-- table, index, view, function, trigger and privilege that eventcore's migrator makes, in the",
    "-- default schema `eventcore` (a store given another `schema` has the same objects there).",
    "--",
    "-- Generated by `npm run db:schema` (test/support/writeSchema.ts) from the catalog of an in-memory",
    `-- PGlite (PostgreSQL ${server?.major}) that eventcore migrated. Do not edit: change the schema with a`,
    "-- new migration in drizzle/ and regenerate; test/schema.test.ts fails while this file differs from",
    "-- what the migrations make. It builds the same schema in an empty database, but it is no migration:",
    "-- only drizzle/ upgrades an existing store.",
    "--",
    "-- Every object belongs to the role that ran the migrations. eventcore.migrations is the migrator's",
    "-- history, which the migrator creates: one row per migration applied."
  ].join("\n")
  return `${[header, ...(await dumpSections(query)).map(renderSection)].join("\n\n")}\n`
}
