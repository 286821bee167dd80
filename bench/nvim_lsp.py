"""`agp lsp` driven by a real editor: Neovim, headless, on a 2,000-line policy file.

Needs `nvim` on PATH (0.7 or later: `vim.lsp.start_client`); without it, says so and exits 0.
Neovim starts the server as its own client would (`python -m agp.lsp`, text changes sent as
they are made, no debounce on the client's side), opens one generated file of about `--lines`
lines (`bench/lsp.py`'s set, in one file) and times, with Neovim's own clock:

- the open to the file's first diagnostics;
- `--changes` edits (alternately an error and its fix, as `bench/lsp.py` makes them), each from
  the change to the `publishDiagnostics` of that version (the server's 50 ms debounce included);
- a completion asked right after each change, while the server checks it;
- formatting the whole file.

    python bench/nvim_lsp.py [--lines 2000] [--changes 30]

`bench/lsp.py` measures the same steps from pygls' client over stdio; this one shows that an
editor sees the same figures. The test suite never needs Neovim.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# bench/lsp.py's generated set, loaded by path: the bare name `lsp` stands for no package here.
_spec = importlib.util.spec_from_file_location("bench_lsp", Path(__file__).with_name("lsp.py"))
assert _spec is not None and _spec.loader is not None
_bench_lsp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench_lsp)
policy_set = _bench_lsp.policy_set

DRIVER = r"""
local root, file, out, python, changes = ROOT, FILE, OUT, PYTHON, CHANGES
local uv = vim.loop
local function now() return uv.hrtime() / 1e6 end
local uri = vim.uri_from_fname(file)
local published = {}  -- version -> when its diagnostics arrived, and how many
local first_diagnostics = nil
local ready = false
local id = vim.lsp.start_client({
  name = "agp", cmd = {python, "-m", "agp.lsp"}, root_dir = root,
  workspace_folders = {{uri = vim.uri_from_fname(root), name = "bench"}},
  flags = {debounce_text_changes = 0},
  on_init = function() ready = true end,
  handlers = {
    ["textDocument/publishDiagnostics"] = function(_, result)
      if result.uri == uri then
        local t = now()
        first_diagnostics = first_diagnostics or t
        if result.version then published[result.version] = {t, #result.diagnostics} end
      end
    end,
    ["workspace/codeLens/refresh"] = function() return vim.NIL end,
  },
})
assert(vim.wait(20000, function() return ready end, 1), "the server did not start")
vim.cmd("edit " .. vim.fn.fnameescape(file))
local buf = vim.api.nvim_get_current_buf()
local opened = now()
vim.lsp.buf_attach_client(buf, id)
assert(vim.wait(30000, function() return first_diagnostics ~= nil end, 1), "no diagnostics")
local results = {open_ms = first_diagnostics - opened, changes = {}, completions = {}}

-- The first ` by bot` of the file: typing `bto` over `bot` makes an unknown agent.
local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
local row, col
for i, line in ipairs(lines) do
  local at = line:find(" by bot", 1, true)
  if at then row, col = i - 1, at + 3; break end
end
local in_row, in_col
for i, line in ipairs(lines) do
  local at = line:find(" in job", 1, true)
  if at then in_row, in_col = i - 1, at + 3; break end
end
local client = vim.lsp.get_client_by_id(id)
for k = 1, changes do
  local broken = k % 2 == 1
  local start = now()
  vim.api.nvim_buf_set_text(buf, row, col, row, col + 3, {broken and "bto" or "bot"})
  local version = vim.api.nvim_buf_get_changedtick(buf)
  -- A completion right after the keystroke, while the server checks the change.
  local asked, answered = now(), nil
  client.request("textDocument/completion", {
    textDocument = {uri = uri}, position = {line = in_row, character = in_col}},
    function() answered = now() end, buf)
  assert(vim.wait(30000, function() return answered ~= nil end, 1), "no completion")
  table.insert(results.completions, answered - asked)
  assert(vim.wait(30000, function() return published[version] ~= nil end, 1),
         "no diagnostics for version " .. version)
  local got = published[version]
  assert((got[2] > 0) == broken, "wrong diagnostics for version " .. version)
  table.insert(results.changes, got[1] - start)
end

local asked, edits = now(), nil
client.request("textDocument/formatting", {
  textDocument = {uri = uri}, options = {tabSize = 2, insertSpaces = true}},
  function(err, result) edits = result or {} end, buf)
assert(vim.wait(30000, function() return edits ~= nil end, 1), "no formatting")
results.format_ms = now() - asked
results.format_edits = #edits
results.nvim = vim.version()
vim.fn.writefile({vim.fn.json_encode(results)}, out)
client.stop()
vim.cmd("qa!")
"""


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a Lua string for these paths


def run(nvim: str, lines: int, changes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (path,) = policy_set(root, lines, files=1)
        out = root / "results.json"
        driver = root / "drive.lua"
        driver.write_text(
            DRIVER.replace("ROOT", lua_string(str(root))).replace("FILE", lua_string(str(path)))
            .replace("OUT", lua_string(str(out))).replace("PYTHON", lua_string(sys.executable))
            .replace("CHANGES", str(changes)), encoding="utf-8")
        done = subprocess.run([nvim, "--headless", "-u", "NONE", "-i", "NONE", "-c",
                               f"luafile {driver}"], capture_output=True, text=True,
                              timeout=600, check=False)
        if not out.exists():
            raise SystemExit(f"Neovim did not finish:\n{done.stdout}\n{done.stderr}")
        result: dict = json.loads(out.read_text(encoding="utf-8"))
        result["lines"] = path.read_text(encoding="utf-8").count("\n")
        return result


def p95(samples: list[float]) -> float:
    s = sorted(samples)
    return s[int(0.95 * (len(s) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=30)
    args = parser.parse_args()
    nvim = shutil.which("nvim")
    if nvim is None:
        print("nvim is not on PATH: nothing measured (bench/lsp.py drives the server without it)")
        return
    r = run(nvim, args.lines, args.changes)
    v = r["nvim"]
    changes, completions = r["changes"], r["completions"]
    print(f"Neovim {v['major']}.{v['minor']}.{v['patch']}, headless; {r['lines']} lines in 1 file")
    print(f"open to diagnostics {r['open_ms']:.0f} ms")
    print(f"{len(changes)} changes to diagnostics: median {statistics.median(changes):.0f} ms, "
          f"p95 {p95(changes):.0f} ms, max {max(changes):.0f} ms")
    print(f"completion right after each change: median {statistics.median(completions):.0f} ms, "
          f"p95 {p95(completions):.0f} ms, max {max(completions):.0f} ms")
    print(f"formatting the file: {r['format_ms']:.0f} ms ({r['format_edits']} edits)")


if __name__ == "__main__":
    main()
