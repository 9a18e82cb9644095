-- (e) the analytics libraries' route: POST /v1/batch with batches of BENCH_BATCH_SIZE track
-- messages as segment-analytics-python sends them (Basic auth with the write key, `sentAt` and
-- `writeKey` in the body, uncompressed), drawn like events.lua's: every BENCH_REJECT_EVERY-th
-- one from the messages the service must reject. Message ids are unique across the run.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

setup = common.setup
done = common.done

local accepted, rejected = {}, {}
local headers, nonce, batch_size, reject_every, age, write_key
local counter = 0

-- The data files hold whole JSON objects; the script keeps their members, without braces, so
-- that it can put the message id and the time in front.
local function members(path)
  local rows = {}
  for _, line in ipairs(common.lines(path)) do
    rows[#rows + 1] = string.sub(line, 2, -2)
  end
  return rows
end

function init(args)
  math.randomseed(5000 + tid)
  accepted = members(common.env("BENCH_MESSAGES_ACCEPTED"))
  rejected = members(common.env("BENCH_MESSAGES_REJECTED"))
  headers = {
    Authorization = common.env("BENCH_ANALYTICS_AUTHORIZATION"),
    ["Content-Type"] = "application/json",
  }
  write_key = common.env("BENCH_EVENTS_KEY")
  nonce = common.env("BENCH_NONCE")
  batch_size = tonumber(common.env("BENCH_BATCH_SIZE"))
  reject_every = tonumber(common.env("BENCH_REJECT_EVERY"))
  age = tonumber(common.env("BENCH_EVENT_AGE"))
end

local function message_id()
  counter = counter + 1
  return string.format("%s-%04x-4000-8000-%012x", nonce, tid, counter)
end

function request()
  local clock = os.time()
  local timestamp = os.date("!%Y-%m-%dT%H:%M:%S.000+00:00", clock - age)
  local messages = {}
  for i = 1, batch_size do
    local pool = (i % reject_every == 0) and rejected or accepted
    messages[i] = '{"messageId":"' .. message_id() .. '","timestamp":"' .. timestamp .. '",'
      .. pool[math.random(#pool)] .. "}"
  end
  local body = '{"batch":[' .. table.concat(messages, ",") .. '],"sentAt":"'
    .. os.date("!%Y-%m-%dT%H:%M:%S.000000+00:00", clock) .. '","writeKey":"' .. write_key .. '"}'
  return wrk.format("POST", "/v1/batch", headers, body)
end
