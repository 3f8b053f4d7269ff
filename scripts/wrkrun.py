"""What the benchmark scripts share: wrk over a rotating list of bearer
tokens, its output read back, and a keep-alive JSON connection.

Imported by scripts/compare-builds.py and scripts/many-users.py (run from
any directory: Python puts a script's own directory on its path).
"""
import http.client, json, os, subprocess

# Each request the next token of the list (none: no Authorization header);
# each thread starts at a place of its own in the list.
ROTATE_LUA = """
local tokens = {}
local file = os.getenv("WRK_TOKENS_FILE")
if file ~= nil and file ~= "" then
  for line in io.lines(file) do tokens[#tokens + 1] = line end
end
local path = os.getenv("WRK_PATH")
local i = 0
init = function(args)
  i = math.random(0, math.max(#tokens - 1, 0))
end
request = function()
  if #tokens == 0 then return wrk.format("GET", path) end
  i = i % #tokens + 1
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[i] })
end
"""


def write_lua(directory):
    """Writes the rotating script into `directory`; returns its path."""
    path = os.path.join(directory, "rotate.lua")
    with open(path, "w") as f:
        f.write(ROTATE_LUA)
    return path


def to_ms(v):
    """A wrk latency (`812.00us`, `1.20ms`, `2.00s`) in milliseconds."""
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if v.endswith(unit) and (unit != "s" or not v.endswith(("us", "ms"))):
            return float(v[: -len(unit)]) * f
    return float(v)


def wrk(addr, path, tokens_file, lua, threads, conns, secs):
    """`wrk --latency` on http://addr/path: requests/s, p99 ms, errors."""
    env = dict(os.environ, WRK_PATH=path, WRK_TOKENS_FILE=tokens_file or "")
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--latency", "-s", lua, f"http://{addr}"],
        env=env, capture_output=True, text=True, check=True).stdout
    rate = p99 = None
    errors = 0
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            rate = float(parts[1])
        elif len(parts) == 2 and parts[0] == "99%":
            p99 = to_ms(parts[1])
        elif line.strip().startswith("Non-2xx"):
            errors += int(parts[-1])
        elif line.strip().startswith("Socket errors"):
            errors += sum(int(p.strip(",")) for p in parts if p.strip(",").isdigit())
    assert rate is not None and p99 is not None, out
    return rate, p99, errors


class Conn:
    """One keep-alive connection: JSON in, status and JSON out."""

    def __init__(self, addr, timeout=120):
        host, port = addr.rsplit(":", 1)
        self.c = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def call(self, method, path, token=None, body=None):
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["content-type"] = "application/json"
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.c.request(method, path, body=data, headers=headers)
        r = self.c.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None)

    def close(self):
        self.c.close()
