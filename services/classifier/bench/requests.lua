-- wrk script: POST request bodies prepared by bench/workload.py, in rotation, and count statuses.
-- BENCH_BODIES names the folder holding bodies.txt: one request a line, "path<TAB>headers" where
-- headers is "name: value" pairs separated by "|".

local folder = os.getenv("BENCH_BODIES")
local requests = {}
local index = 0
statuses = {}  -- global: done() reads it from each thread with thread:get
local threads = {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(folder .. "/bodies.txt") do
    local path, pairs_text = line:match("^([^\t]+)\t(.*)$")
    if path then
      local headers = {}
      for pair in pairs_text:gmatch("[^|]+") do
        local name, value = pair:match("^([^:]+):%s*(.*)$")
        headers[name] = value
      end
      table.insert(requests, wrk.format("POST", wrk.path, headers, read(path)))
    end
  end
  index = math.random(#requests) - 1
end

function request()
  index = (index % #requests) + 1
  return requests[index]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses") or {}
    for status, count in pairs(counts) do merged[status] = (merged[status] or 0) + count end
  end
  local parts = {}
  for status, count in pairs(merged) do table.insert(parts, '"' .. status .. '": ' .. count) end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_timeout": %d, "errors_status": %d, "statuses": {%s}, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status, table.concat(parts, ", "),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
