-- wrk script for bench/run.sh: POST /api/auth/signin with a JSON body.
--
-- The credentials come from BENCH_SIGNIN_USER and BENCH_SIGNIN_PASSWORD. run.sh generates
-- them from letters, digits and '-' only, so they need no JSON escaping here.

local user = os.getenv("BENCH_SIGNIN_USER")
local password = os.getenv("BENCH_SIGNIN_PASSWORD")
if not user or not password then
   error("signin.lua: set BENCH_SIGNIN_USER and BENCH_SIGNIN_PASSWORD")
end

-- A static request: wrk builds it once from these fields, which keeps the client cheap.
wrk.method = "POST"
wrk.body = string.format('{"username":"%s","password":"%s"}', user, password)
wrk.headers["Content-Type"] = "application/json"

-- Reuse the result reporter that lives next to this file.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
