"""A supervisor starts a daemonic worker; the worker starts a forked helper and a `sleep`,
then the supervisor kills it: both children are orphaned."""
import os
import signal
import sys
import time

if len(sys.argv) > 1 and sys.argv[1] == "worker":
    if os.fork() == 0:
        time.sleep(4)
        os._exit(0)
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "4"])
    time.sleep(30)
    sys.exit(0)

worker = os.fork()
if worker == 0:
    os.execvp("python3", ["python3", "demo_worker", "worker"])
time.sleep(1)
os.kill(worker, signal.SIGKILL)
os.waitpid(worker, 0)
time.sleep(1)
