-- (e) integration check: GET a random seeded subject's connection to the bench integration,
-- with that subject's own JWT (a third none, a third pending, a third approved).
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

setup = common.setup
done = common.done

local requests = {}

-- Every request is formatted once here, so the load generator spends its core on sending.
function init(args)
  math.randomseed(2000 + tid)
  local integration = common.env("BENCH_INTEGRATION")
  for _, line in ipairs(common.lines(common.env("BENCH_SUBJECTS"))) do
    local subject = common.fields(line)
    local path = "/v1/subjects/" .. subject[1] .. "/integrations/" .. integration
    requests[#requests + 1] = wrk.format("GET", path, { Authorization = "Bearer " .. subject[2] })
  end
end

function request()
  return requests[math.random(#requests)]
end
