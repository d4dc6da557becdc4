\set id random(1, 2000)
select coalesce(max(stream_version),0) as v from lean.events where stream_id = 'w2-' || :id \gset
select lean.append_one('w2-' || :id, :v, ('[{"id":"' || gen_random_uuid() || '","type":"Deposited","data":{"amount":1}}]')::jsonb);
