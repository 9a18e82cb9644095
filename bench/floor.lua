-- (d) the floor: GET the floor app's fixed model; the URL's path is the request.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

setup = common.setup
done = common.done
