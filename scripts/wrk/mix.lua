-- wrk script: a mixed list of paths, pipelined, with a JSON summary.
--
--   PATHS="/echo,/echo?status=503:10,/echo?delay=1ms-5ms" DEPTH=4 \
--     wrk -t2 -c64 -d10s -s scripts/wrk/mix.lua http://127.0.0.1:8080
--
-- PATHS   comma-separated paths (with their queries), taken in turn; a path
--         given as METHOD:PATH uses that method (POST:/echo); default "/"
-- DEPTH   requests written back to back on each write (HTTP/1.1 pipelining),
--         default 1
-- BODY    a request body sent with every request (Content-Length set)
--
-- At the end one line of JSON goes to stdout, after wrk's own report:
--   {"requests": N, "duration_s": S, "rps": R, "bytes": B,
--    "errors": {"connect": .., "read": .., "write": .., "status": .., "timeout": ..},
--    "statuses": {"200": N, "503": N},
--    "latency_us": {"min": .., "mean": .., "stdev": .., "max": ..,
--                   "p50": .., "p90": .., "p99": .., "p99.9": ..}}
-- wrk times a pipelined write as one: with DEPTH > 1 a latency is that of
-- the whole batch. The percentiles are computed here from wrk's histogram
-- (latency(i): the i-th value recorded, and how often): wrk's own
-- latency:percentile() returns 0 when its coordinated-omission correction
-- has counted values below the minimum (wg/wrk#354, seen here with delays).

local depth = tonumber(os.getenv("DEPTH") or "1")
local body = os.getenv("BODY")
local paths = {}
for item in string.gmatch(os.getenv("PATHS") or "/", "[^,]+") do
  local method, path = string.match(item, "^(%u+):(/.*)$")
  paths[#paths + 1] = {method or "GET", path or item}
end

local threads = {}

setup = function(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

-- each thread starts at another place in the list, then takes them in turn
local next_path = 1
local batches = {}

init = function(args)
  next_path = (id or 0) % #paths + 1
  -- every batch holds DEPTH requests (wrk counts them once, at the start);
  -- the batches cover the list, each starting one path further
  for b = 1, #paths do
    local r = {}
    for i = 1, depth do
      local p = paths[(b + i - 2) % #paths + 1]
      local headers = nil
      if body then headers = {["Content-Length"] = tostring(#body)} end
      r[i] = wrk.format(p[1], p[2], headers, body)
    end
    batches[b] = table.concat(r)
  end
  statuses = {}
end

request = function()
  local req = batches[next_path]
  next_path = (next_path + depth - 1) % #paths + 1
  return req
end

response = function(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

local function json_object(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = string.format("%q: %s", k, tostring(t[k]))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

done = function(summary, latency, requests)
  local all = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses") or {}
    for k, v in pairs(s) do all[k] = (all[k] or 0) + v end
  end
  local secs = summary.duration / 1e6
  local e = summary.errors
  local values, total = {}, 0
  for i = 1, #latency do
    local v, n = latency(i)
    values[i] = {v, n}
    total = total + n
  end
  local function pct(p)
    local rank, seen = math.max(1, math.ceil(p / 100 * total)), 0
    for _, vn in ipairs(values) do
      seen = seen + vn[2]
      if seen >= rank then return vn[1] end
    end
    return "null"
  end
  local lat = {
    min = latency.min, max = latency.max,
    mean = string.format("%.1f", latency.mean), stdev = string.format("%.1f", latency.stdev),
    p50 = pct(50), p90 = pct(90), p99 = pct(99), ["p99.9"] = pct(99.9),
  }
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "rps": %.1f, "bytes": %d, "depth": %d, ' ..
    '"errors": %s, "statuses": %s, "latency_us": %s}\n',
    summary.requests, secs, summary.requests / secs, summary.bytes, depth,
    json_object({connect = e.connect, read = e.read, write = e.write, status = e.status,
                 timeout = e.timeout}),
    json_object(all), json_object(lat)))
end
