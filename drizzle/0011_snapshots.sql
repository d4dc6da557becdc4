-- Snapshots of commands' folded state (see `snapshots` in src/sql/schema.ts):
-- a cache beside the events, which it never changes. Rows are replaced and
-- removed, so no trigger guards them.
CREATE TABLE "snapshots" (
	"command" text NOT NULL,
	"key" text NOT NULL,
	"state_version" integer NOT NULL,
	"event_versions" text NOT NULL,
	"streams" jsonb NOT NULL,
	"covered" bigint NOT NULL,
	"state" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "eventcore_snapshots_pkey" PRIMARY KEY("command","key"),
	CONSTRAINT "eventcore_snapshots_streams" CHECK (jsonb_typeof("snapshots"."streams") = 'array'),
	CONSTRAINT "eventcore_snapshots_state_version_positive" CHECK ("snapshots"."state_version" >= 1)
);
--> statement-breakpoint
-- A role that may append runs commands, and a command with snapshots reads and
-- writes them: every role (PUBLIC included) granted EXECUTE on the append
-- gets SELECT, INSERT and UPDATE here, so an application role set up before
-- this migration keeps running its commands. Clearing snapshots (DELETE) is
-- left to the owner.
DO $$
DECLARE
  grantee record;
BEGIN
  FOR grantee IN
    SELECT DISTINCT a.grantee AS oid
    FROM pg_proc p, aclexplode(p.proacl) a
    WHERE p.oid = 'append(jsonb)'::regprocedure AND a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE'
  LOOP
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON snapshots TO %s',
      CASE WHEN grantee.oid = 0 THEN 'PUBLIC' ELSE grantee.oid::regrole::text END);
  END LOOP;
END
$$;
