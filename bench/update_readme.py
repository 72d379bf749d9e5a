#!/usr/bin/python3
"""Regenerates the README's measured figures from the benchmarks' output.

    bench/update_readme.py [--only NAME ...] [--from-results] [--check]

Runs every benchmark below (or only the named ones), keeps each one's whole
output in bench/results/NAME.txt (with the date, commit and load it ran
under), then rebuilds from all of bench/results/:
  - the table between <!-- bench:table --> and <!-- /bench:table -->, one
    row per `README| ` line, in the order below;
  - every <!--v:KEY-->figure<!--/v--> in the prose, from `README-VALUE| KEY
    figure` lines.
A benchmark that fails, a KEY no result defines, or a result with no README
line stops the script before README.md is touched. --from-results skips the
runs; --check only says whether README.md is up to date with bench/results.
Run it on an idle machine, from a release build (scripts/build.sh)."""
import argparse
import datetime
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
BENCHES = [  # name, command (from the repo root)
    ("bench_kmeans", ["build/bench/bench_kmeans"]),
    ("bench_colour", ["build/bench/bench_colour"]),
    ("bench_pipeline", [PY, "bench/bench_pipeline.py"]),
    ("bench_lung", [PY, "bench/bench_lung.py"]),
    ("bench_volume", [PY, "bench/bench_volume.py", "--reps", "5"]),
    ("bench_dicom", [PY, "bench/bench_dicom.py"]),
    ("bench_ct_overhead", ["build/bench/bench_ct_overhead"]),
    ("bench_memory", [PY, "bench/bench_memory.py"]),
    ("bench_batch", [PY, "bench/bench_batch.py"]),
]
RESULTS = os.path.join(ROOT, "bench", "results")
TABLE = re.compile(r"(<!-- bench:table -->\n).*?(<!-- /bench:table -->)", re.S)
VALUE = re.compile(r"<!--v:([a-z0-9_]+)-->(.*?)<!--/v-->")


def run(name, cmd):
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    print("== %s: %s" % (name, " ".join(cmd)), flush=True)
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("update_readme: %s failed (exit %d):\n%s%s" % (name, r.returncode, r.stdout[-2000:],
                                                               r.stderr[-2000:]))
    head = "# %s\n# %s, commit %s%s, load average %.2f on %d cores after the run\n" % (
        " ".join(cmd), datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), rev,
        " (with local changes)" if dirty else "", os.getloadavg()[0], os.cpu_count())
    with open(os.path.join(RESULTS, name + ".txt"), "w") as f:
        f.write(head + r.stdout)
    print(r.stdout, end="", flush=True)


def collect():
    rows, values = [], {}
    for name, _ in BENCHES:
        path = os.path.join(RESULTS, name + ".txt")
        if not os.path.exists(path):
            sys.exit("update_readme: no %s; run bench/update_readme.py --only %s" % (path, name))
        lines = open(path).read().splitlines()
        mine = [l[len("README| "):] for l in lines if l.startswith("README| ")]
        if not mine:
            sys.exit("update_readme: %s has no README| row" % path)
        rows += mine
        for l in lines:
            if l.startswith("README-VALUE| "):
                key, _, val = l[len("README-VALUE| "):].partition(" ")
                values[key] = val.strip()
    return rows, values


def rewrite(text, rows, values):
    table = "| command | measures | result |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    if not TABLE.search(text):
        sys.exit("update_readme: README.md has no <!-- bench:table --> block")
    text = TABLE.sub(lambda m: m.group(1) + table + m.group(2), text)
    missing = sorted({k for k in VALUE.findall(text) if k[0] not in values})
    if missing:
        sys.exit("update_readme: no benchmark defines %s" % ", ".join(k for k, _ in missing))
    return VALUE.sub(lambda m: "<!--v:%s-->%s<!--/v-->" % (m.group(1), values[m.group(1)]), text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--from-results", action="store_true")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    known = dict(BENCHES)
    for name in a.only or []:
        if name not in known:
            sys.exit("update_readme: no benchmark %s (have: %s)" % (name, ", ".join(known)))
    if not a.from_results and not a.check:
        for name, cmd in BENCHES:
            if a.only is None or name in a.only:
                run(name, cmd)
    readme = os.path.join(ROOT, "README.md")
    old = open(readme).read()
    new = rewrite(old, *collect())
    if a.check:
        print("README.md is %s" % ("up to date" if new == old else "NOT up to date with bench/results"))
        sys.exit(0 if new == old else 1)
    with open(readme, "w") as f:
        f.write(new)
    print("update_readme: README.md %s" % ("rewritten" if new != old else "unchanged"))


if __name__ == "__main__":
    main()
