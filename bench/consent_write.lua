-- (b) consent write: PATCH a subject's `performance` to the opposite of what is stored, with the
-- subject's own JWT, so that every request records a change. Each thread walks its own slice of
-- subjects round robin and remembers what it stored; the slice is far larger than the number of
-- connections, so a subject's previous write has always finished before it comes round again.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

setup = common.setup
done = common.done

local slice = {}
local position = 0

local function patch(subject, token, granted, policy_version)
  local body = string.format(
    '{"categories":{"performance":%s},"policy_version":"%s",' ..
      '"source":"preference_center","method":"custom"}',
    tostring(granted), policy_version
  )
  local headers = { Authorization = "Bearer " .. token, ["Content-Type"] = "application/json" }
  return wrk.format("PATCH", "/v1/subjects/" .. subject .. "/consent", headers, body)
end

function init(args)
  local threads = tonumber(common.env("BENCH_THREADS"))
  local policy_version = common.env("BENCH_POLICY_VERSION")
  for index, line in ipairs(common.lines(common.env("BENCH_SUBJECTS"))) do
    if (index - 1) % threads == tid then
      local subject = common.fields(line)
      slice[#slice + 1] = {
        grant = patch(subject[1], subject[2], true, policy_version),
        withdraw = patch(subject[1], subject[2], false, policy_version),
        granted = subject[3] == "1",
      }
    end
  end
  if #slice == 0 then
    error("bench: this thread has no subjects to write")
  end
end

function request()
  position = position % #slice + 1
  local subject = slice[position]
  subject.granted = not subject.granted
  if subject.granted then
    return subject.grant
  end
  return subject.withdraw
end
