-- wrk script for bench/bench.py's cross-check of benchtool: each wrk thread
-- sends every request of all its connections with one Host, thread i taking
-- host i % N of the comma-separated list in WRK_HOSTS. (A Host that changes
-- per request would switch Hosts inside one keep-alive connection, which
-- posta answers with 421 and a close, by design.)
local hosts = {}
for h in string.gmatch(os.getenv("WRK_HOSTS") or "localhost", "[^,]+") do
    hosts[#hosts + 1] = h
end
local counter = 0

function setup(thread)
    thread:set("host", hosts[(counter % #hosts) + 1])
    counter = counter + 1
end

function init(args)
    wrk.headers["Host"] = host
    req = wrk.format("GET", "/.well-known/posta")
end

function request()
    return req
end
