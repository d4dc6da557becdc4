CREATE TABLE "dead_letters" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "dead_letters_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"projection" text NOT NULL,
	"event_id" uuid NOT NULL,
	"position" text NOT NULL,
	"event_type" text NOT NULL,
	"error" text NOT NULL,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "projections" (
	"name" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"position" text NOT NULL,
	"status" text NOT NULL,
	"owner" text,
	"error" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "eventcore_projections_kind" CHECK ("projections"."kind" in ('projection', 'reactor')),
	CONSTRAINT "eventcore_projections_status" CHECK ("projections"."status" in ('running', 'stopped', 'failed')),
	CONSTRAINT "eventcore_projections_position" CHECK ("projections"."position" ~ '^[0-9]{20}-[0-9]{19}$')
);
--> statement-breakpoint
CREATE INDEX "eventcore_dead_letters_projection" ON "dead_letters" USING btree ("projection","id");