-- Shared by every scenario: thread ids, the data files, and the run's summary as JSON.
-- Each script loads this with dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua").
local common = {}

-- A setting the harness must pass; missing ones fail the run instead of sending nonsense.
function common.env(name)
  local value = os.getenv(name)
  if value == nil or value == "" then
    error("bench: environment variable " .. name .. " is not set")
  end
  return value
end

-- The non-empty lines of a data file.
function common.lines(path)
  local rows = {}
  for line in io.lines(path) do
    if line ~= "" then
      rows[#rows + 1] = line
    end
  end
  return rows
end

-- The tab-separated fields of one line.
function common.fields(line)
  local fields = {}
  for field in string.gmatch(line, "[^\t]+") do
    fields[#fields + 1] = field
  end
  return fields
end

-- Runs in the main state once per thread: each thread learns its id as the global `tid`.
local threads = 0
function common.setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

-- Writes the summary where BENCH_RESULT says; Python reads it instead of parsing wrk's text.
function common.done(summary, latency, requests)
  local errors = summary.errors
  local out = assert(io.open(common.env("BENCH_RESULT"), "w"))
  out:write(string.format(
    '{"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
      '"p50_us":%.0f,"p99_us":%.0f,"max_us":%.0f,' ..
      '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout
  ))
  out:close()
end

return common
