"""A daemonic billiard.Process starts two children (billiard allows it), then is SIGKILLed.

The children sleep on: they are orphaned. Prints the pids as JSON."""
import json
import os
import signal
import sys
import time

import billiard
import setproctitle


def sleeper():
    time.sleep(600)


def daemonic_worker(conn):
    setproctitle.setproctitle("lineage-scenario: daemonic worker billiard")
    children = [billiard.Process(target=sleeper) for _ in range(2)]
    for child in children:
        child.start()
    conn.send([child.pid for child in children])
    time.sleep(600)


def main():
    parent_end, child_end = billiard.Pipe()
    worker = billiard.Process(target=daemonic_worker, args=(child_end,), daemon=True)
    worker.start()
    children = parent_end.recv()
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    print(json.dumps({"parent": os.getpid(), "daemonic": worker.pid, "children": children}))
    sys.stdout.flush()
    # The orphans stay behind for the test to see; it cleans up by session.
    os._exit(0)


if __name__ == "__main__":
    main()
