-- (e) bulk decisions: POST /v1/consent/decisions with BENCH_DECISION_SIZE random seeded subjects
-- and one category, as a nightly job asks. The calls rotate over the keys in BENCH_DECISION_KEYS
-- (comma-separated), one bucket each, so that the load measures the service and not the
-- per-key rate limit, which a call of 1,000 subjects pays ten times.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

setup = common.setup
done = common.done

-- Bodies built once here: the load generator's core goes on sending, not on formatting.
local BODIES = 64
local requests = {}
local counter = 0

function init(args)
  math.randomseed(5000 + tid)
  local subjects = {}
  for _, line in ipairs(common.lines(common.env("BENCH_SUBJECTS"))) do
    subjects[#subjects + 1] = '"' .. common.fields(line)[1] .. '"'
  end
  local size = tonumber(common.env("BENCH_DECISION_SIZE"))
  local keys = {}
  for key in string.gmatch(common.env("BENCH_DECISION_KEYS"), "[^,]+") do
    keys[#keys + 1] = key
  end
  for i = 1, BODIES do
    local ids = {}
    for j = 1, size do
      ids[j] = subjects[math.random(#subjects)]
    end
    local body = '{"subject_ids":[' .. table.concat(ids, ",") .. '],"categories":["customization"]}'
    local headers = {
      Authorization = "Bearer " .. keys[(i - 1) % #keys + 1],
      ["Content-Type"] = "application/json",
    }
    requests[i] = wrk.format("POST", "/v1/consent/decisions", headers, body)
  end
end

function request()
  counter = counter + 1
  return requests[(counter - 1) % #requests + 1]
end
