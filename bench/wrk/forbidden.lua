-- bench/wrk/forbidden.lua -- user A's valid session on user B's path (B ~= A); expects 403.
-- Usage: BENCH_USERS=10000 wrk -t2 -c64 -d10s --latency -s bench/wrk/forbidden.lua http://127.0.0.1:8080
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

bench.run(403, function()
  local a = bench.random_user()
  local b = a % bench.users + 1 -- another user (needs BENCH_USERS >= 2)
  return bench.get(b, bench.token_of(a))
end)
