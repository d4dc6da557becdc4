-- What `Projection.status` needs to tell the truth: the event types and stream
-- prefix a projection or reactor handles (as its last run declared them), so
-- that its lag counts only its own events, and the instances standing by to
-- take it over.
ALTER TABLE "projections" ADD COLUMN "event_types" jsonb;--> statement-breakpoint
ALTER TABLE "projections" ADD COLUMN "stream_prefix" text;--> statement-breakpoint
ALTER TABLE "projections" ADD COLUMN "standbys" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "projections" ADD CONSTRAINT "eventcore_projections_event_types" CHECK (jsonb_typeof("projections"."event_types") = 'array');--> statement-breakpoint
ALTER TABLE "projections" ADD CONSTRAINT "eventcore_projections_standbys" CHECK (jsonb_typeof("projections"."standbys") = 'object');