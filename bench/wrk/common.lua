-- bench/wrk/common.lua -- what the scenario scripts share: the seeded data's shape (users
-- 1..N, session token bench-<id>, project id = user id) and the status bookkeeping, since
-- wrk counts only non-2xx and the 401/403 scenarios expect exactly those.
--
-- Environment: BENCH_USERS (default 10000), BENCH_TOKEN_PREFIX (default "bench-").
-- At the end one line goes to stdout: BENCH_RESULT {json}, which bench/run.sh reads.

local M = {}

M.users = tonumber(os.getenv("BENCH_USERS") or "10000")
M.token_prefix = os.getenv("BENCH_TOKEN_PREFIX") or "bench-"

local project_types = { "web-site", "web-service", "web-app" }
local languages = { "typescript", "javascript", "php", "go", "python", "java", "kotlin", "ruby", "elixir" }

function M.random_user()
  return math.random(1, M.users)
end

function M.project_path(user_id, project_id)
  return "/api/users/" .. user_id .. "/projects/" .. project_id
end

function M.cookie(token)
  return "neptun-session=" .. token
end

-- A fresh header table per request: wrk.format adds Content-Length to the table it is given.
function M.get(user_id, token)
  return wrk.format("GET", M.project_path(user_id, user_id), {
    ["Cookie"] = M.cookie(token),
    ["Accept"] = "application/json",
  })
end

local counter = 0

-- All four fields, values varied so that every UPDATE really changes the row; with
-- `etag`, sent as If-Match.
function M.patch(user_id, token, etag)
  counter = counter + 1
  local body = string.format(
    '{"name":"Bench project %d-%d","description":"Updated by bench/run.sh, request %d",' ..
    '"project_type":"%s","programming_language":"%s"}',
    user_id, counter, counter,
    project_types[math.random(#project_types)], languages[math.random(#languages)])
  local headers = {
    ["Cookie"] = M.cookie(token),
    ["Accept"] = "application/json",
    ["Content-Type"] = "application/json",
  }
  if etag then headers["If-Match"] = etag end
  return wrk.format("PATCH", M.project_path(user_id, user_id), headers, body)
end

function M.token_of(user_id)
  return M.token_prefix .. user_id
end

-- Installs wrk's hooks: make_request() builds each request, `expected` is the one status
-- counted as right; every other status is tallied per thread and summed in done().
-- `observe(status, headers, body)`, if given, sees every response too.
function M.run(expected, make_request, observe)
  local threads = {}

  function setup(thread)
    thread:set("thread_index", #threads + 1)
    threads[#threads + 1] = thread
  end

  function init(args)
    math.randomseed(os.time() * 7919 + (thread_index or 0) * 104729)
    responses = 0
    mismatched = 0
    wrong_statuses = {}
  end

  request = make_request

  function response(status, headers, body)
    if observe then observe(status, headers, body) end
    responses = responses + 1
    if status ~= expected then
      mismatched = mismatched + 1
      local key = tostring(status)
      wrong_statuses[key] = (wrong_statuses[key] or 0) + 1
    end
  end

  function done(summary, latency, requests)
    local total_responses, total_mismatched, statuses = 0, 0, {}
    for _, thread in ipairs(threads) do
      total_responses = total_responses + (thread:get("responses") or 0)
      total_mismatched = total_mismatched + (thread:get("mismatched") or 0)
      for status, n in pairs(thread:get("wrong_statuses") or {}) do
        statuses[status] = (statuses[status] or 0) + n
      end
    end
    local parts = {}
    for status, n in pairs(statuses) do
      parts[#parts + 1] = string.format('"%s":%d', status, n)
    end
    local e = summary.errors
    io.write(string.format(
      'BENCH_RESULT {"expected":%d,"duration_us":%d,"requests":%d,"responses":%d,' ..
      '"mismatched":%d,"wrong_statuses":{%s},"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
      expected, summary.duration, summary.requests, total_responses,
      total_mismatched, table.concat(parts, ","), summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max))
  end
end

return M
