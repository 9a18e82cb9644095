-- (a) consent read: GET a random seeded subject's consent with that subject's own JWT.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

setup = common.setup
done = common.done

local requests = {}

-- Every request is formatted once here, so the load generator spends its core on sending.
function init(args)
  math.randomseed(1000 + tid)
  for _, line in ipairs(common.lines(common.env("BENCH_SUBJECTS"))) do
    local subject = common.fields(line)
    local path = "/v1/subjects/" .. subject[1] .. "/consent"
    requests[#requests + 1] = wrk.format("GET", path, { Authorization = "Bearer " .. subject[2] })
  end
end

function request()
  return requests[math.random(#requests)]
end
