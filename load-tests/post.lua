-- wrk script: POST a JSON body (override with BODY env), as the bearer of NR_TOKEN.
wrk.method = "POST"
wrk.body = os.getenv("BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("NR_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
