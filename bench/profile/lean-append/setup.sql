create schema raw;
create table raw.events (like eventcore.events including all);
-- From migration 0008 on, eventcore.events has previous_version itself: the copies start without it.
alter table raw.events drop column if exists previous_version;
create schema lean;
create table lean.events (like eventcore.events including all);
alter table lean.events drop column if exists previous_version;
alter table lean.events add column previous_version integer generated always as (nullif(stream_version - 1, 0)) stored;
alter table lean.events add constraint lean_prev foreign key (stream_id, previous_version) references lean.events (stream_id, stream_version);
create schema leannofk;
create table leannofk.events (like eventcore.events including all);
alter table leannofk.events drop column if exists previous_version;

-- one stream, events as a jsonb array of {id,type,data}; expected: -1 any, 0 no stream, n
create function lean.append_one(stream text, expected int, evs jsonb) returns jsonb language plpgsql as $$
declare v int;
begin
  perform pg_advisory_xact_lock(hashtextextended(stream, 0));
  select coalesce(max(stream_version), 0) into v from lean.events where stream_id = stream;
  if expected >= 0 and v <> expected then
    return jsonb_build_object('conflict', v);
  end if;
  insert into lean.events (event_id, stream_id, stream_version, event_type, data, metadata)
  select (e->>'id')::uuid, stream, v + o::int, e->>'type', e->'data', '{}'
  from jsonb_array_elements(evs) with ordinality as x(e, o);
  return jsonb_build_object('version', v + jsonb_array_length(evs));
end $$;
create function leannofk.append_one(stream text, expected int, evs jsonb) returns jsonb language plpgsql as $$
declare v int;
begin
  perform pg_advisory_xact_lock(hashtextextended(stream, 0));
  select coalesce(max(stream_version), 0) into v from leannofk.events where stream_id = stream;
  if expected >= 0 and v <> expected then
    return jsonb_build_object('conflict', v);
  end if;
  insert into leannofk.events (event_id, stream_id, stream_version, event_type, data, metadata)
  select (e->>'id')::uuid, stream, v + o::int, e->>'type', e->'data', '{}'
  from jsonb_array_elements(evs) with ordinality as x(e, o);
  return jsonb_build_object('version', v + jsonb_array_length(evs));
end $$;
-- plain SQL variant (no plpgsql), conflicts as an error from a check via division... keep: returns version or null
create function lean.append_sql(stream text, expected int, evs jsonb) returns int language sql as $$
  select pg_advisory_xact_lock(hashtextextended(stream, 0));
  with cur as (select coalesce(max(stream_version), 0) as v from lean.events where stream_id = stream),
  ins as (
    insert into lean.events (event_id, stream_id, stream_version, event_type, data, metadata)
    select (e->>'id')::uuid, stream, cur.v + o::int, e->>'type', e->'data', '{}'
    from cur, jsonb_array_elements(evs) with ordinality as x(e, o)
    where expected < 0 or cur.v = expected
    returning stream_version)
  select max(stream_version) from ins;
$$;
