-- (d) erasure: POST /v1/erasure-requests with the privacy team's key, one seeded subject after
-- another from BENCH_SUBJECTS, as an account service deletes accounts. A subject comes round
-- again only once the list runs out; the harness then sees fewer requests created than answered.
-- Each created request's subject is written to BENCH_ASKED.<thread>: the subjects that must be gone.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

setup = common.setup
done = common.done

local requests = {}
local position = 0
local asked = nil

function init(args)
  local threads = tonumber(common.env("BENCH_THREADS"))
  local headers = {
    Authorization = "Bearer " .. common.env("BENCH_PRIVACY_KEY"),
    ["Content-Type"] = "application/json",
  }
  for index, line in ipairs(common.lines(common.env("BENCH_SUBJECTS"))) do
    if (index - 1) % threads == tid then
      local body = '{"subject_id":"' .. common.fields(line)[1] .. '","reason":"account_deleted"}'
      requests[#requests + 1] = wrk.format("POST", "/v1/erasure-requests", headers, body)
    end
  end
  if #requests == 0 then
    error("bench: this thread has no subjects to erase")
  end
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function response(status, headers, body)
  if status == 202 then
    if asked == nil then
      asked = assert(io.open(common.env("BENCH_ASKED") .. "." .. tid, "w"))
      asked:setvbuf("line")
    end
    asked:write(string.match(body, '"subject_id":"([^"]+)"'), "\n")
  end
end
