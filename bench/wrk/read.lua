-- bench/wrk/read.lua -- GET a random user's own project; expects 200.
-- Usage: BENCH_USERS=10000 wrk -t2 -c64 -d10s --latency -s bench/wrk/read.lua http://127.0.0.1:8080
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

bench.run(200, function()
  local id = bench.random_user()
  return bench.get(id, bench.token_of(id))
end)
