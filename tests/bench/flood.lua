-- Every request from a different client address (x-forwarded-for from a trusted proxy):
-- a flood of random IPs against a per-address limit.
dofile(os.getenv("REPORT_LUA"))

math.randomseed(os.time())
request = function()
  local ip = string.format("%d.%d.%d.%d", math.random(1, 223), math.random(0, 255), math.random(0, 255), math.random(1, 254))
  return wrk.format(nil, nil, { ["x-forwarded-for"] = ip })
end
