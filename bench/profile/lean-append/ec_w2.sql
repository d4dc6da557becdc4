\set id random(1, 2000)
select coalesce(max(stream_version),0) as v from eventcore.events where stream_id = 'w2-' || :id \gset
select eventcore.append(('{"streams":[{"id":"w2-' || :id || '","expected":' || :v || '}],"events":[{"stream":"w2-' || :id || '","id":"' || gen_random_uuid() || '","type":"Deposited","data":{"amount":1}}],"conflict":"reply"}')::jsonb);
