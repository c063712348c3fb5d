-- wrk script for bench/run.sh: mints distinct access tokens by rotating refresh tokens through
-- POST /api/auth/refreshtoken (no password hashing), and writes each access token to a file.
--
-- Environment:
--   BENCH_REFRESH_FILE  refresh tokens, one per line: at least one per wrk connection
--   BENCH_MINT_THREADS  wrk threads; thread N takes lines N, N + threads, ...
--   BENCH_MINT_OUT      the access tokens go to BENCH_MINT_OUT.<thread>, one per line; the
--                       file BENCH_MINT_OUT.<thread>.done appears when the thread has its share
--   BENCH_MINT_EACH     how many tokens each wrk thread mints
--
-- Each thread keeps a pool of refresh tokens: a request takes one, its response puts back the
-- successor. (wrk asks one thread for a request before the run, to check the script: that
-- token is lost, so run.sh hands out one more than there are connections.) Should the pool be
-- empty, the connection asks for /healthz instead, which mints nothing and counts no error; a
-- refresh that fails counts as a non-2xx answer, and run.sh flags the run. wrk itself runs
-- until run.sh sees every thread's .done file and stops it.

local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
end

function init(args)
   local threads = tonumber(os.getenv("BENCH_MINT_THREADS") or "1")
   quota = tonumber(os.getenv("BENCH_MINT_EACH") or "0")
   pool = {}
   local i = 0
   for line in io.lines(os.getenv("BENCH_REFRESH_FILE")) do
      if i % threads == id then
         table.insert(pool, line)
      end
      i = i + 1
   end
   out = assert(io.open(os.getenv("BENCH_MINT_OUT") .. "." .. id, "w"))
   minted = 0
end

function request()
   local token = table.remove(pool)
   if not token or minted >= quota then
      return wrk.format("GET", "/healthz")
   end
   return wrk.format("POST", "/api/auth/refreshtoken", { ["Content-Type"] = "application/json" },
      '{"refreshToken":"' .. token .. '"}')
end

function response(status, headers, body)
   local refresh = body:match('"refreshToken":"([^"]+)"')
   local access = body:match('"accessToken":"([^"]+)"')
   if refresh then
      table.insert(pool, refresh)
   end
   if access and minted < quota then
      out:write(access, "\n")
      minted = minted + 1
      if minted == quota then
         out:close()
         assert(io.open(os.getenv("BENCH_MINT_OUT") .. "." .. id .. ".done", "w")):close()
         wrk.thread:stop()
      end
   end
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
