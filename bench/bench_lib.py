"""What the Python benchmarks share: medians with their spread, timed child
runs, and the README lines that bench/update_readme.py collects.

A benchmark prints, besides its own report,
    README| | `command` | what it measures | result |   (a row of the table)
    README-VALUE| key value                            (a figure in the prose)
and update_readme.py puts them into README.md; no figure there is typed by
hand."""
import os
import statistics
import sys
import time


def spread(xs, fmt="%.1f"):
    """'median [min-max]' of xs."""
    return (fmt + " [" + fmt + "–" + fmt + "]") % (statistics.median(xs), min(xs), max(xs))


def run_child(args, stdout=None):
    """Runs args in its own child (stderr and, unless asked, stdout to
    /dev/null): wall seconds, CPU seconds (user + system) and peak RSS in
    MiB, from wait4. Exits the benchmark loudly when the child fails."""
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.dup2(stdout if stdout is not None else null, 1)
            os.execv(args[0], args)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - t0
    if status != 0:
        sys.exit("benchmark: failed (status %d): %s" % (status, " ".join(args)))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def interleaved(reps, sides):
    """Runs every side once per rep after one warm-up round, rotating which
    side goes first, so slow phases of a busy machine hit all of them.
    sides: {name: callable() -> number}. Returns {name: [value per rep]}."""
    names = list(sides)
    for n in names:
        sides[n]()
    out = {n: [] for n in names}
    for r in range(reps):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            out[n].append(sides[n]())
    return out


def ratios(a, b):
    """Per-rep ratios a[i] / b[i] (paired: measured in the same rep)."""
    return [x / y for x, y in zip(a, b)]


def readme_row(command, measures, result):
    print("README| | `%s` | %s | %s |" % (command, measures, result))


def readme_value(key, value):
    print("README-VALUE| %s %s" % (key, value))


def machine_line():
    """Load average and cores, for the reader judging the spread."""
    return "load average %.2f on %d cores" % (os.getloadavg()[0], os.cpu_count())
