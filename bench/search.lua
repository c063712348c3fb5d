-- wrk script for bench/scale.py: GET /api/admin/users?q=… with an admin's token, cycling
-- through the queries of a file (one per line, URL-safe as written).
--
-- Environment:
--   BENCH_SEARCH_QUERIES  the queries, one per line
--   BENCH_TOKEN           the admin's access token

local token = os.getenv("BENCH_TOKEN")
local queries = {}

function init(args)
   for line in io.lines(os.getenv("BENCH_SEARCH_QUERIES")) do
      if #line > 0 then
         queries[#queries + 1] = line
      end
   end
   next_query = math.random(#queries)
end

function request()
   next_query = next_query % #queries + 1
   return wrk.format("GET", "/api/admin/users?q=" .. queries[next_query], {
      ["x-access-token"] = token,
   })
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
