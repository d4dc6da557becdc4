\set id random(1, 9000000000000000)
select lean.append_one('acct-' || :id, 0, ('[{"id":"' || gen_random_uuid() || '","type":"Opened","data":{"amount":1}}]')::jsonb);
