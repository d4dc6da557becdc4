\set id random(1, 9000000000000000)
select eventcore.append(('{"streams":[{"id":"t-' || :id || '","expected":"no_stream"}],"events":[' || (select string_agg('{"stream":"t-' || :id || '","id":"' || gen_random_uuid() || '","type":"T","data":{"n":' || i || '}}', ',') from generate_series(1,10) i) || '],"conflict":"reply"}')::jsonb);
