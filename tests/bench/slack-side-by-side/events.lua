-- wrk script: POSTs pre-signed Slack event requests from $BENCH_EVENTS, each once, in order.
-- Line format: <timestamp>\t<v0=signature>\t<json body>. When the file is exhausted it
-- wraps (the repeats are duplicates a Slack app dedups); `done` prints how many were sent.
local path = os.getenv("BENCH_PATH") or "/slack/events"
local reqs = {}
n = 0
i = 0
wrapped = 0

function init(args)
  local f = assert(io.open(os.getenv("BENCH_EVENTS"), "r"))
  for line in f:lines() do
    local ts, sig, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
    n = n + 1
    reqs[n] = wrk.format("POST", path, {
      ["Content-Type"] = "application/json",
      ["X-Slack-Request-Timestamp"] = ts,
      ["X-Slack-Signature"] = sig,
    }, body)
  end
  f:close()
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return reqs[i]
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("BENCH_SENT %d BENCH_WRAPPED %d BENCH_LOADED %d\n",
      t:get("i") or -1, t:get("wrapped") or -1, t:get("n") or -1))
  end
  io.write(string.format("BENCH_P50_US %d BENCH_P99_US %d\n",
    latency:percentile(50), latency:percentile(99)))
  -- The tail's shape: whether a p99 is a slow tenth or a few stalls.
  io.write(string.format("BENCH_P90_US %d BENCH_P999_US %d\n",
    latency:percentile(90), latency:percentile(99.9)))
end
