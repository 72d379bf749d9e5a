#!/usr/bin/python3
"""Runs a command and appends its peak resident memory to a log.

Usage: tests/peak_rss.py LOG COMMAND [ARG...]
LOG gets one line "KIB COMMAND ARG..." per run: the largest resident set of
the command and of every process it waited for (a DICOM decoding child
included). The exit status is the command's (128 + N for a signal N, as a
shell reports it). SIGTERM and SIGINT are passed on, so `timeout` still
stops the command.
"""
import os
import signal
import sys


def main():
    log, cmd = sys.argv[1], sys.argv[2:]
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(cmd[0], cmd)
        finally:
            os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    with open(log, "a") as f:
        f.write("%d %s\n" % (usage.ru_maxrss, " ".join(cmd)))
    sys.exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status)
             else os.WEXITSTATUS(status))


main()
