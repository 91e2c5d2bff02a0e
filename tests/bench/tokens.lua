-- Sends each request with the next bearer token from $TOKENS (one per line), cycling, so
-- a verifier's cache of verified tokens (16k) never holds the next one: every request
-- pays the signature check. Prints the lab's RESULT line at the end.
dofile(os.getenv("REPORT_LUA"))

local tokens, i = {}, 0
for line in io.lines(os.getenv("TOKENS")) do tokens[#tokens + 1] = line end

request = function()
  i = i % #tokens + 1
  return wrk.format(nil, nil, { ["authorization"] = "Bearer " .. tokens[i] })
end
