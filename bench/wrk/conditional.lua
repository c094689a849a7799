-- bench/wrk/conditional.lua -- a safe read-modify-write: GET a random user's project, then
-- PATCH it with If-Match set to the ETag that GET returned; expects 200 for both. A server
-- without ETags (the peers) gets the same GET + PATCH pairs without If-Match.
-- Usage: BENCH_USERS=10000 wrk -t2 -c64 -d10s --latency -s bench/wrk/conditional.lua http://127.0.0.1:8080
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

-- wrk multiplexes a thread's connections, so a GET's answer is told from a PATCH's by the
-- project in its body: ids with a GET outstanding are in `reading`.
local reading = {}
local edits = {}

bench.run(200, function()
  local edit = table.remove(edits, 1)
  if edit then
    return bench.patch(edit.id, bench.token_of(edit.id), edit.etag)
  end
  local id = bench.random_user()
  reading[id] = (reading[id] or 0) + 1
  return bench.get(id, bench.token_of(id))
end, function(status, headers, body)
  local id = tonumber(body and body:match('"neptun_user_id":(%d+)') or "")
  if not id or not reading[id] then return end
  reading[id] = reading[id] > 1 and reading[id] - 1 or nil
  if status == 200 then
    edits[#edits + 1] = { id = id, etag = headers["ETag"] or headers["Etag"] or headers["etag"] }
  end
end)
