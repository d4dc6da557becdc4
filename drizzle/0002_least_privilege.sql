-- Least privilege: an application role needs only SELECT on the tables,
-- INSERT on eventcore_events, USAGE on its sequence and EXECUTE on
-- eventcore_append (see docs/security.md). The functions that maintain
-- eventcore_streams therefore run with their owner's rights, with a fixed
-- search_path (the schema the tables were created in, then pg_temp last) so a
-- caller cannot slip in objects of its own.
DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION eventcore_append(jsonb) SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
  EXECUTE format('ALTER FUNCTION eventcore_advance_streams() SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
END
$$;
--> statement-breakpoint
-- Functions are executable by every role unless revoked; appending is a grant.
REVOKE EXECUTE ON FUNCTION eventcore_append(jsonb) FROM PUBLIC;
