\set id random(1, 9000000000000000)
insert into raw.events (event_id, stream_id, stream_version, event_type, data, metadata) values (gen_random_uuid(), 'acct-' || :id, 1, 'Opened', '{"amount":1}', '{}');
