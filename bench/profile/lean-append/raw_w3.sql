\set id random(1, 9000000000000000)
insert into raw.events (event_id, stream_id, stream_version, event_type, data, metadata) select gen_random_uuid(), 't-' || :id, i, 'T', jsonb_build_object('n', i), '{}' from generate_series(1,10) i;
