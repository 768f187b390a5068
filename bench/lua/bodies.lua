-- bench/lua/bodies.lua: wrk sends one pre-generated request body per request, each body at most once.
--
--   wrk -t T -c C -d S --latency -s bench/lua/bodies.lua URL -- file=BODIES threads=T [check=json|pi]
--       [ctype=json|form] [once=1] [cycle=1]
--
-- BODIES has one request body per line (bench/gen_bodies.py writes them). Thread i of T sends lines i+1, i+1+T,
-- i+1+2T, ... in file order, so a file ordered counter-major (every user's counter c before anyone's c+1) keeps that
-- order across threads: a user's next code is T*N... lines later and can never overtake the earlier one.
-- Lines are read lazily (the file is streamed, not loaded), so a million-line file costs no memory.
--
-- Every reply is classified in response():
--   check=json   Tessera / hello envelope: "errorCode":0 is a success, any other errorCode a failure
--   check=pi     privacyIDEA /validate/check: "value": true is a success, "value": false a failure
-- and counted per errorCode. done() prints one machine-readable line, "BENCHRESULT k=v ...", that bench/run parses.
--
-- When a thread runs out of lines it says so (exhausted=N in the result: bench/run reports it loudly, as the
-- figure would otherwise include replays) and stops sending. once=1 (use with -t 1) turns that into the normal end:
-- the run stops as soon as every line has been answered (the bulk seeding path), by SIGINT to wrk itself.
-- cycle=1 starts the file over instead (read-only operations, whose bodies may repeat).

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk, bench_timespec *tp);
  int kill(int pid, int sig);
  int getpid(void);
]]
local ts = ffi.new("bench_timespec")
function bench_now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

-- ---------------------------------------------------------------------------------------------------------------
-- main state: one entry per thread, to sum up in done()
local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

-- ---------------------------------------------------------------------------------------------------------------
-- thread state
local opts = {}
local lines_iter = nil
local stride, tid = 1, 0
local path = "/"
local hdrs = {}
local done_reading = false
ok, failed, unparsed, exhausted, sent, maxline, dummies, dummies_answered = 0, 0, 0, 0, 0, 0, 0, 0
codes = {}
local line_no = 0 -- 1-based line number in the file of the last line read by this thread
local once = false
local cycle = false
local answered = 0
local stopping = false

-- threads sharing the file (paced.lua needs it)
function stride_count()
  return stride
end

local function next_body()
  if done_reading then return nil end
  while true do
    local l = lines_iter()
    if l == nil and cycle and line_no > 0 then
      -- read-only operations: start the file again (their bodies can be repeated)
      lines_iter = assert(io.open(opts.file, "r")):lines()
      line_no = 0
      l = lines_iter()
    end
    if l == nil then
      done_reading = true
      return nil
    end
    line_no = line_no + 1
    if (line_no - 1) % stride == tid and #l > 0 then
      return l
    end
  end
end

function init(args)
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k then opts[k] = v end
  end
  tid = tonumber(wrk.thread:get("tid")) or 0
  stride = tonumber(opts.threads or "1")
  once = opts.once == "1"
  cycle = opts.cycle == "1"
  if not opts.file then error("bodies.lua: file=PATH is required") end
  local f = assert(io.open(opts.file, "r"))
  lines_iter = f:lines()
  path = wrk.path
  if opts.ctype == "form" then
    hdrs["Content-Type"] = "application/x-www-form-urlencoded"
  else
    hdrs["Content-Type"] = "application/json"
  end
  opts.check = opts.check or "json"
end

local verified = false
local peeked = nil
function request()
  local body
  if peeked then
    body, peeked = peeked, nil
  else
    body = next_body()
  end
  if not verified then
    -- wrk calls request() once on thread 0's state before the run, only to check the request (wrk.c main():
    -- script_verify_request). That call must not use up a body: it peeks, and the next call sends the same line.
    verified = true
    if tid == 0 and body ~= nil then
      peeked = body
      return wrk.format("POST", path, hdrs, body)
    end
  end
  if body == nil then
    if exhausted == 0 and not once then
      io.stderr:write(string.format("bodies.lua: thread %d ran out of request bodies after %d\n", tid, sent))
    end
    exhausted = exhausted + 1
    dummies = dummies + 1
    if not once then wrk.thread:stop() end
    -- something harmless for the connection to send while the thread winds down: every server here answers
    -- 404 to it, which response() does not count
    return wrk.format("GET", "/bench-wind-down", {})
  end
  sent = sent + 1
  maxline = line_no
  return wrk.format("POST", path, hdrs, body)
end

local logged = 0
local function count_code(c, body)
  codes[c] = (codes[c] or 0) + 1
  if logged < 5 and body then -- the first failures' replies go to stderr (bench/run keeps wrk's output)
    logged = logged + 1
    io.stderr:write(string.format("bodies.lua: thread %d: failed reply: %s\n", tid, body:sub(1, 300)))
  end
end

function response(status, headers, body)
  if status == 404 then
    dummies_answered = dummies_answered + 1
    return
  end
  if opts.check == "pi" then
    if body:find('"value"%s*:%s*true') then
      ok = ok + 1
    elseif body:find('"value"%s*:%s*false') then
      failed = failed + 1
      count_code("value_false", body)
    else
      unparsed = unparsed + 1
      count_code("http" .. status, body)
    end
  else
    local c = body:match('"errorCode"%s*:%s*"?(%-?%d+)')
    if c == "0" then
      ok = ok + 1
    elseif c then
      failed = failed + 1
      count_code(c, body)
    else
      unparsed = unparsed + 1
      count_code("http" .. status, body)
    end
  end
  answered = ok + failed + unparsed
  if once and done_reading and answered >= sent and not stopping then
    stopping = true
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), 2) -- SIGINT: wrk's main thread stops sleeping and prints the summary at once
  end
end

-- ---------------------------------------------------------------------------------------------------------------
function done(summary, latency, requests)
  local t_ok, t_failed, t_unparsed, t_exhausted, t_sent, t_max, t_late, t_maxlate = 0, 0, 0, 0, 0, 0, 0, 0
  local all_codes = {}
  for _, t in ipairs(threads) do
    t_ok = t_ok + (t:get("ok") or 0)
    t_failed = t_failed + (t:get("failed") or 0)
    t_unparsed = t_unparsed + (t:get("unparsed") or 0)
    t_exhausted = t_exhausted + (t:get("exhausted") or 0)
    t_sent = t_sent + (t:get("sent") or 0)
    t_late = t_late + (t:get("late") or 0)
    local ml = t:get("maxlate") or 0
    if ml > t_maxlate then t_maxlate = ml end
    local m = t:get("maxline") or 0
    if m > t_max then t_max = m end
    local cs = t:get("codes") or {}
    for k, v in pairs(cs) do all_codes[k] = (all_codes[k] or 0) + v end
  end
  local code_list = {}
  for k, v in pairs(all_codes) do table.insert(code_list, k .. ":" .. v) end
  table.sort(code_list)
  local dur_s = summary.duration / 1e6
  local e = summary.errors
  local line = string.format(
    "BENCHRESULT requests=%d duration_s=%.3f rps=%.1f ok=%d failed=%d unparsed=%d ok_rps=%.1f " ..
    "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f mean_ms=%.3f sent=%d maxline=%d exhausted=%d " ..
    "late=%d maxlate_ms=%.1f sock_connect=%d sock_read=%d sock_write=%d sock_timeout=%d http_status=%d codes=%s",
    summary.requests, dur_s, summary.requests / dur_s, t_ok, t_failed, t_unparsed, t_ok / dur_s,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000, t_sent, t_max, t_exhausted,
    t_late, t_maxlate, e.connect, e.read, e.write, e.timeout, e.status,
    (#code_list > 0) and table.concat(code_list, ",") or "-")
  print(line)
end
