-- bench/lua/paced.lua: bodies.lua at a fixed offered rate (an open-loop approximation; wrk2 is not in Debian).
--
--   BENCH_RATE=5000 wrk -t T -c C -d S --latency -s bench/lua/paced.lua URL -- file=BODIES threads=T
--
-- wrk calls delay() before every request of every connection. Each thread keeps an absolute schedule: its k-th
-- request is due at t0 + k * T / RATE seconds, and delay() returns the time left until the next free slot. With
-- enough idle connections (bench/run uses 128 at 5,000/s, i.e. one slot every ~25 ms per connection) a request goes
-- out when it is due whatever the server's latency: the schedule, not the replies, sets the pace. When no
-- connection is free at a slot's time, the slot is sent late: delay() counts those (late=, maxlate_ms= in the
-- result). A run with late > 1% of its requests slipped into closed-loop behaviour (coordinated omission: its
-- percentiles are understated) and bench/run says so. The rate is read from the environment because wrk decides
-- whether a script paces (has delay()) before it passes the script its arguments.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "bodies.lua")

local rate = tonumber(os.getenv("BENCH_RATE") or "")
if not rate or rate <= 0 then error("paced.lua: set BENCH_RATE (requests per second, all threads together)") end

local t0 = nil
local k = 0
late, maxlate = 0, 0

function delay()
  local now = bench_now_ms()
  local interval = 1000.0 * stride_count() / rate
  if t0 == nil then t0 = now end
  local due = t0 + k * interval
  k = k + 1
  local d = due - now
  if d < -1.0 then
    late = late + 1
    if -d > maxlate then maxlate = -d end
  end
  if d <= 0 then return 0 end
  return math.floor(d)
end
