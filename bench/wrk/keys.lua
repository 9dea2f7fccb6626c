-- Cycle through N keys: <prefix>0<suffix> … <prefix>(N-1)<suffix>, forever (disk-tier hits).
-- wrk ... -s keys.lua URL -- <prefix> <count> <suffix>
-- Headers given with -H (the bearer token) are kept: wrk.format uses wrk.headers.
local dir = debug.getinfo(1, 'S').source:match('^@(.*/)') or './'
dofile(dir .. 'report.lua')

prefix, count, suffix = '/', 1, ''
local counter = 0

function init(args)
  prefix = args[1]
  count = tonumber(args[2])
  suffix = args[3] or ''
  -- Start each thread at a different place, so threads do not walk in lockstep.
  counter = math.random(0, count - 1)
end

function request()
  local i = counter % count
  counter = counter + 1
  return wrk.format(nil, prefix .. i .. suffix)
end
