-- Shared by every wrk run of bench/run.sh: after the run, print one machine-readable line
-- that run.sh parses (wrk's own human-readable output is kept alongside for reference).
--
--   BENCH_RESULT requests=N duration_us=N p50_us=N p99_us=N non2xx=N connect=N read=N write=N timeout=N
--
-- `non2xx` is wrk's "Non-2xx or 3xx responses" counter (wrk counts statuses >= 400 there).
-- Latencies are in microseconds, as wrk records them.

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%.0f duration_us=%.0f p50_us=%.0f p99_us=%.0f"
         .. " non2xx=%.0f connect=%.0f read=%.0f write=%.0f timeout=%.0f\n",
      summary.requests, summary.duration,
      latency:percentile(50.0), latency:percentile(99.0),
      e.status, e.connect, e.read, e.write, e.timeout))
end
