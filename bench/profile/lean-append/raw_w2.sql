\set id random(1, 2000)
select coalesce(max(stream_version),0) + 1 as v from raw.events where stream_id = 'w2-' || :id \gset
insert into raw.events (event_id, stream_id, stream_version, event_type, data, metadata) values (gen_random_uuid(), 'w2-' || :id, :v, 'Deposited', '{"amount":1}', '{}') on conflict do nothing;
