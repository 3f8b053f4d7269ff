-- sessiond forward auth for HAProxy 2.5 and later (core.httpclient).
--
--   http-request lua.sessiond-auth <check URL> <Header,Header,...>
--
-- Sends the request's Authorization and Cookie headers, the original
-- method and URI (for sessiond's log), and the roles named in the variable
-- txn.sessiond_role (X-Required-Role) to sessiond's /api/auth/forward.
-- Sets txn.sessiond_status to the check's status (0 when sessiond could
-- not be reached or did not answer in time), and copies the listed
-- identity headers from a 200 onto the request, after removing any the
-- client sent. The configuration denies every status other than 200.

-- How long one attempt waits for sessiond's answer. HAProxy 2.6's client
-- makes up to four attempts when one times out, so a hanging sessiond is
-- given up on after about four times this (8 s), and the request denied.
-- Without a timeout the client would wait indefinitely.
local TIMEOUT_MS = 2000

local function first(values)
  if values == nil then
    return nil
  end
  -- HAProxy's header tables are indexed from 0.
  return values[0] or values[1]
end

local function split(list)
  local names = {}
  for name in string.gmatch(list or "", "[^,]+") do
    names[#names + 1] = name
  end
  return names
end

core.register_action("sessiond-auth", { "http-req" }, function(txn, url, copy)
  local names = split(copy)
  for _, name in ipairs(names) do
    txn.http:req_del_header(name)
  end
  txn:set_var("txn.sessiond_status", 0)

  local incoming = txn.http:req_get_headers()
  local headers = {
    ["x-forwarded-method"] = { txn.sf:method() },
    ["x-forwarded-uri"] = { txn.sf:pathq() },
    ["x-original-uri"] = { txn.sf:pathq() },
  }
  for _, name in ipairs({ "authorization", "cookie" }) do
    local value = first(incoming[name])
    if value ~= nil then
      headers[name] = { value }
    end
  end
  local role = txn:get_var("txn.sessiond_role")
  if role ~= nil and role ~= "" then
    headers["x-required-role"] = { role }
  end

  local ok, res = pcall(function()
    return core.httpclient():get({ url = url, headers = headers, timeout = TIMEOUT_MS })
  end)
  if not ok or res == nil or res.status == nil then
    return
  end
  txn:set_var("txn.sessiond_status", res.status)
  if res.status ~= 200 then
    return
  end
  local answered = res.headers or {}
  for _, name in ipairs(names) do
    local value = first(answered[string.lower(name)])
    if value ~= nil then
      txn.http:req_set_header(name, value)
    end
  end
end, 2)
