#!/usr/bin/env python3
"""Checks the Rust dependencies against deny.toml, offline, in seconds:

- advisories: every crate of Cargo.lock against the RustSec advisories
  vendored in .ci/advisory-db (scripts/refresh-advisories.sh refreshes them;
  the snapshot's date is printed, and a warning when it is old);
- sources: every crate comes from crates.io (or a path in this repo);
- bans: no crate deny.toml bans;
- licenses: every crate's license expression is satisfied by deny.toml's
  allow-list (or a per-crate exception).

deny.toml is in cargo-deny's format, so `cargo deny check` reads the same
reviewed lists where cargo-deny is installed. Exit status 1 on any finding.
"""

import datetime
import os
import re
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DB = os.path.join(ROOT, ".ci", "advisory-db")
CRATES_IO = {
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
}
STALE_DAYS = 120


def parse_version(text):
    text = text.strip().lstrip("v")
    core, _, pre = text.partition("-")
    core = core.split("+")[0]
    parts = [int(p) for p in core.split(".") if p != ""]
    given = len(parts)
    parts += [0] * (3 - len(parts))
    # A pre-release sorts before its release.
    return (tuple(parts[:3]), 0 if pre else 1, pre), given


def matches(version, requirement):
    """Whether `version` meets a comma-separated semver requirement."""
    v = parse_version(version)[0]
    for comp in requirement.split(","):
        comp = comp.strip()
        if comp in ("", "*"):
            continue
        m = re.match(r"^(>=|<=|>|<|=|\^|~)?\s*(.+)$", comp)
        op, ver = (m.group(1) or "^"), m.group(2)
        r, given = parse_version(ver)
        if op == ">=" and not v >= r:
            return False
        if op == ">" and not v > r:
            return False
        if op == "<=" and not v <= r:
            return False
        if op == "<" and not v < r:
            return False
        if op == "=" and v[0][:given] != r[0][:given]:
            return False
        if op in ("^", "~"):
            if v < r:
                return False
            major, minor, _ = r[0]
            if op == "~" or given == 1:
                keep = 1 if given == 1 else 2
            elif major > 0:
                keep = 1
            elif minor > 0 or given == 2:
                keep = 2
            else:
                keep = 3
            if v[0][:keep] != r[0][:keep]:
                return False
    return True


def advisories(name):
    folder = os.path.join(DB, "crates", name)
    if not os.path.isdir(folder):
        return
    for f in sorted(os.listdir(folder)):
        with open(os.path.join(folder, f), encoding="utf-8") as fh:
            text = fh.read()
        m = re.search(r"```toml\n(.*?)\n```", text, re.S)
        if m:
            title = re.search(r"^# (.+)$", text[m.end():], re.M)
            yield tomllib.loads(m.group(1)), (title.group(1) if title else "")


def license_ok(expr, allowed):
    """Evaluates an SPDX expression (AND, OR, WITH, parentheses; the old
    `A/B` as OR) against the allowed identifiers."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expr.replace("/", " OR "))
    pos = 0

    def atom():
        nonlocal pos
        if pos < len(tokens) and tokens[pos] == "(":
            pos += 1
            value = disjunction()
            pos += 1  # ")"
            return value
        ident = tokens[pos] if pos < len(tokens) else ""
        pos += 1
        if pos < len(tokens) and tokens[pos] == "WITH":
            exception = tokens[pos + 1]
            pos += 2
            return f"{ident} WITH {exception}" in allowed or ident in allowed
        return ident in allowed

    def conjunction():
        nonlocal pos
        value = atom()
        while pos < len(tokens) and tokens[pos] == "AND":
            pos += 1
            value = atom() and value
        return value

    def disjunction():
        nonlocal pos
        value = conjunction()
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            value = conjunction() or value
        return value

    return disjunction()


def compiled():
    """The registry crates a build of the workspace compiles (its tests
    included), with their licenses: Cargo.lock also lists crates of
    features nothing enables (sqlx's MySQL driver), which are never built."""
    out = subprocess.run(
        ["cargo", "tree", "--workspace", "--locked", "--offline", "-e", "normal,build,dev",
         "--prefix", "none", "--format", "{p}|{l}"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    seen = {}
    for line in out.splitlines():
        left, _, license = line.partition("|")
        words = left.split()
        if len(words) < 2 or "(/" in left:
            continue  # blank, or a crate of this workspace
        license = license.removesuffix(" (*)").strip()
        seen[(words[0], words[1].lstrip("v"))] = license
    return [{"name": n, "version": v, "license": l} for (n, v), l in sorted(seen.items())]


def main():
    with open(os.path.join(ROOT, "deny.toml"), "rb") as f:
        deny = tomllib.load(f)
    with open(os.path.join(ROOT, "Cargo.lock"), "rb") as f:
        lock = tomllib.load(f)
    packages = lock["package"]
    built = compiled()
    problems, warnings = [], []

    # Advisories.
    snapshot = {}
    with open(os.path.join(DB, "SNAPSHOT"), encoding="utf-8") as f:
        for line in f:
            key, _, value = line.strip().partition(" ")
            snapshot[key] = value
    date = datetime.datetime.fromisoformat(snapshot["date"])
    age = (datetime.datetime.now(datetime.timezone.utc) - date).days
    print(f"advisories: RustSec snapshot {snapshot['commit'][:12]} of {snapshot['date']} "
          f"({age} days old, {snapshot.get('advisories', '?')} advisories for Cargo.lock's crates)")
    if age > STALE_DAYS:
        warnings.append(f"the advisory snapshot is {age} days old: run scripts/refresh-advisories.sh")
    ignored = {i if isinstance(i, str) else i["id"] for i in deny.get("advisories", {}).get("ignore", [])}
    for p in built:
        for adv, title in advisories(p["name"]):
            a = adv["advisory"]
            if a.get("withdrawn"):
                continue
            versions = adv.get("versions", {})
            safe = versions.get("patched", []) + versions.get("unaffected", [])
            if any(matches(p["version"], req) for req in safe):
                continue
            line = f"{a['id']} {p['name']} {p['version']}: {title}"
            if a["id"] in ignored:
                print(f"  ignored (deny.toml): {line}")
            elif a.get("informational"):
                problems.append(f"advisory ({a['informational']}): {line}")
            else:
                problems.append(f"advisory: {line}")

    # Sources.
    allowed_git = set(deny.get("sources", {}).get("allow-git", []))
    for p in packages:
        src = p.get("source")
        if src is None or src in CRATES_IO:
            continue
        if not any(src.startswith("git+" + g) for g in allowed_git):
            problems.append(f"source: {p['name']} {p['version']} comes from {src}")

    # Bans.
    banned = {b if isinstance(b, str) else b["name"] for b in deny.get("bans", {}).get("deny", [])}
    for p in packages:
        if p["name"] in banned:
            problems.append(f"ban: {p['name']} {p['version']} is banned by deny.toml")

    # Licenses.
    lic = deny.get("licenses", {})
    allowed = set(lic.get("allow", []))
    exceptions = {e["name"]: set(e["allow"]) for e in lic.get("exceptions", [])}
    clarified = {c["name"]: c["expression"] for c in lic.get("clarify", [])}
    for p in built:
        expr = clarified.get(p["name"]) or p.get("license")
        if not expr:
            problems.append(f"license: {p['name']} {p['version']} declares none "
                            "(clarify it in deny.toml)")
        elif not license_ok(expr, allowed | exceptions.get(p["name"], set())):
            problems.append(f"license: {p['name']} {p['version']} is {expr}")

    print(f"checked {len(built)} crates built (of {len(packages)} in Cargo.lock): "
          "advisories, sources, bans, licenses")
    for w in warnings:
        print(f"warning: {w}")
    for p in problems:
        print(f"FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
