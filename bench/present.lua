-- wrk script for bench/run.sh: GET /api/test/user with each access token of a file, each
-- presented once: thread N of M takes tokens N, N + M, N + 2M, ... and stops after as many
-- answers as it has tokens (leaving the file BENCH_TOKENS_FILE.<thread>.done, for run.sh,
-- which then stops wrk).
--
-- Environment:
--   BENCH_TOKENS_FILE   access tokens, one per line
--   BENCH_MINT_THREADS  wrk threads (M)

local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
end

function init(args)
   local threads = tonumber(os.getenv("BENCH_MINT_THREADS") or "1")
   tokens = {}
   local i = 0
   for line in io.lines(os.getenv("BENCH_TOKENS_FILE")) do
      if i % threads == id then
         table.insert(tokens, line)
      end
      i = i + 1
   end
   sent = 0
   answered = 0
end

function request()
   sent = sent + 1
   -- Past the end (other connections still finishing), start over: cached tokens by then.
   local token = tokens[(sent - 1) % #tokens + 1]
   return wrk.format("GET", "/api/test/user", { ["x-access-token"] = token })
end

function response(status, headers, body)
   answered = answered + 1
   if answered == #tokens then
      assert(io.open(os.getenv("BENCH_TOKENS_FILE") .. "." .. id .. ".done", "w")):close()
      wrk.thread:stop()
   end
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
