\set id random(1, 9000000000000000)
select eventcore.append(('{"streams":[{"id":"acct-' || :id || '","expected":"no_stream"}],"events":[{"stream":"acct-' || :id || '","id":"' || gen_random_uuid() || '","type":"Opened","data":{"amount":1}}],"conflict":"reply"}')::jsonb);
