\set id random(1, 9000000000000000)
select lean.append_one('t-' || :id, 0, ('[' || (select string_agg('{"id":"' || gen_random_uuid() || '","type":"T","data":{"n":' || i || '}}', ',') from generate_series(1,10) i) || ']')::jsonb);
