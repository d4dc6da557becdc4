CREATE TABLE "eventcore_events" (
	"global_position" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "eventcore_events_global_position_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"event_id" uuid NOT NULL,
	"stream_id" text NOT NULL,
	"stream_version" integer NOT NULL,
	"event_type" text NOT NULL,
	"data" jsonb NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL,
	"transaction_id" "xid8" DEFAULT pg_current_xact_id() NOT NULL,
	CONSTRAINT "eventcore_events_event_id_unique" UNIQUE("event_id"),
	CONSTRAINT "eventcore_events_stream_version_positive" CHECK ("eventcore_events"."stream_version" >= 1),
	CONSTRAINT "eventcore_events_stream_id_length" CHECK (char_length("eventcore_events"."stream_id") between 1 and 255 and "eventcore_events"."stream_id" = btrim("eventcore_events"."stream_id")),
	CONSTRAINT "eventcore_events_event_type_not_empty" CHECK ("eventcore_events"."event_type" <> ''),
	CONSTRAINT "eventcore_events_metadata_object" CHECK (jsonb_typeof("eventcore_events"."metadata") = 'object')
);
--> statement-breakpoint
CREATE TABLE "eventcore_streams" (
	"stream_id" text PRIMARY KEY NOT NULL,
	"version" integer NOT NULL,
	CONSTRAINT "eventcore_streams_version_not_negative" CHECK ("eventcore_streams"."version" >= 0)
);
--> statement-breakpoint
CREATE UNIQUE INDEX "eventcore_events_stream_version_unique" ON "eventcore_events" USING btree ("stream_id","stream_version");--> statement-breakpoint
CREATE INDEX "eventcore_events_transaction_position" ON "eventcore_events" USING btree ("transaction_id","global_position");