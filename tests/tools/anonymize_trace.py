#!/usr/bin/env python3
"""Makes a trace recorded by a real-world test fit to be committed to the corpus.

A recording holds the whole host: the machine's own processes, their command lines and
environments, and the paths of the checkout and the test cache. This keeps what the test
started (the test program's subtree, cut out beforehand with
`tracer export --format jsonl --pid TEST_PID`), hangs the test program under init, and
replaces the machine's paths with neutral ones.

    tracer export raw.jsonl --format jsonl --pid TEST_PID -o cut.jsonl
    anonymize_trace.py cut.jsonl TEST_PID > corpus/trace/recorded-NAME.jsonl
"""

import json
import os
import sys


def main() -> None:
    path, test_pid = sys.argv[1], int(sys.argv[2])
    workspace = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    home = os.path.expanduser("~")
    replacements = [
        (os.environ.get("TRACER_TEST_CACHE", os.path.join(home, ".cache/tracer-tests")),
         "/var/cache/tracer-tests"),
        (workspace, "/src/tracer"),
        (home, "/home/ci"),
    ]
    with open(path, encoding="utf-8") as trace:
        lines = [json.loads(line) for line in trace if line.strip()]
    header, events = lines[0], lines[1:]
    parents = {e["pid"]: e["ppid"] for e in events if e["event"] == "snapshot"}
    # The test program's ancestors (shells, cargo) are the machine's, not the test's.
    dropped = set()
    pid = parents.get(test_pid)
    while pid not in (None, 0, 1):
        dropped.add(pid)
        pid = parents.get(pid)
    kept = [header]
    for event in events:
        if event.get("pid") in dropped:
            continue
        if event["event"] == "snapshot" and event["pid"] == 1:
            event["comm"], event["cmdline"] = "init", ["/sbin/init"]
        if event["event"] == "snapshot" and event["pid"] == test_pid:
            event["ppid"] = 1
        kept.append(event)
    for event in kept:
        text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        for old, new in replacements:
            text = text.replace(old, new)
        print(text)


if __name__ == "__main__":
    main()
