-- (c) event ingestion: POST /v1/events with batches of BENCH_BATCH_SIZE events, every
-- BENCH_REJECT_EVERY-th one drawn from the events the service must reject (the seed plan knows
-- each subject's consent), the others from those it must accept. Event ids are UUIDs unique
-- across the run: the harness gives each wrk invocation its own nonce, and each thread counts.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

setup = common.setup
done = common.done

local accepted, rejected = {}, {}
local headers, nonce, batch_size, reject_every, age
local counter = 0

-- The data files hold whole JSON objects; the script keeps their members, without braces, so
-- that it can put the event id and the time in front.
local function members(path)
  local rows = {}
  for _, line in ipairs(common.lines(path)) do
    rows[#rows + 1] = string.sub(line, 2, -2)
  end
  return rows
end

function init(args)
  math.randomseed(3000 + tid)
  accepted = members(common.env("BENCH_EVENTS_ACCEPTED"))
  rejected = members(common.env("BENCH_EVENTS_REJECTED"))
  headers = {
    Authorization = "Bearer " .. common.env("BENCH_EVENTS_KEY"),
    ["Content-Type"] = "application/json",
  }
  nonce = common.env("BENCH_NONCE")
  batch_size = tonumber(common.env("BENCH_BATCH_SIZE"))
  reject_every = tonumber(common.env("BENCH_REJECT_EVERY"))
  age = tonumber(common.env("BENCH_EVENT_AGE"))
end

local function event_id()
  counter = counter + 1
  return string.format("%s-%04x-4000-8000-%012x", nonce, tid, counter)
end

function request()
  local occurred_at = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - age)
  local events = {}
  for i = 1, batch_size do
    local pool = (i % reject_every == 0) and rejected or accepted
    events[i] = '{"event_id":"' .. event_id() .. '","occurred_at":"' .. occurred_at .. '",'
      .. pool[math.random(#pool)] .. "}"
  end
  local body = '{"events":[' .. table.concat(events, ",") .. "]}"
  return wrk.format("POST", "/v1/events", headers, body)
end
