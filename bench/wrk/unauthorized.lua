-- bench/wrk/unauthorized.lua -- GET with a well-formed token that no session has (a Redis
-- miss on every request, never a cached answer); expects 401.
-- Usage: BENCH_USERS=10000 wrk -t2 -c64 -d10s --latency -s bench/wrk/unauthorized.lua http://127.0.0.1:8080
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

bench.run(401, function()
  local id = bench.random_user()
  return bench.get(id, "bench-unknown-" .. math.random(1, 1000000000))
end)
