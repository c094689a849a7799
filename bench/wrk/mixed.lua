-- bench/wrk/mixed.lua -- 90 % GET, 10 % PATCH (all four fields) on random users' own
-- projects; expects 200.
-- Usage: BENCH_USERS=10000 wrk -t2 -c64 -d10s --latency -s bench/wrk/mixed.lua http://127.0.0.1:8080
local bench = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

bench.run(200, function()
  local id = bench.random_user()
  if math.random(10) == 1 then
    return bench.patch(id, bench.token_of(id))
  end
  return bench.get(id, bench.token_of(id))
end)
