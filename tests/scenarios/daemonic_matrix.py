"""Daemonic processes that start children anyway, with no title a rule knows.

`python3 daemonic_matrix.py MODE` runs one case: a process D starts children, tells the main
process their pids, and sleeps; the main process waits a moment (D's interpreter is read at
its first fork), SIGKILLs D when the case kills it, prints the pids as JSON and leaves (the
children sleep on; the test cleans up).

Modes:
  stdlib       Process(daemon=True) forks with os.fork() and runs a subprocess
  pool         Process(daemon=True) starts a Pool and a ProcessPoolExecutor (PYTHONOPTIMIZE=1)
  billiard     billiard.Process(daemon=True) starts two billiard children
  spawn        a daemonic Process under the spawn start method forks with os.fork()
  forkserver   a daemonic Process under the forkserver start method forks with os.fork()
  pdeathsig    a daemonic Process sets PR_SET_PDEATHSIG(SIGKILL) as Celery's pool workers
               do (with billiard's helper), then forks and runs a subprocess
  control      nothing daemonic: Process(daemon=False) and a billiard non-daemonic process
               fork and run subprocesses; the main process runs one too
"""
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time


def sleep_forever():
    time.sleep(600)


def fork_sleeper():
    pid = os.fork()
    if pid == 0:
        time.sleep(600)
        os._exit(0)
    return pid


def subprocess_sleeper():
    return subprocess.Popen(["sleep", "600"]).pid


def square(x):
    return x * x


def stdlib_worker(conn):
    conn.send([fork_sleeper(), subprocess_sleeper()])
    time.sleep(600)


def pdeathsig_worker(conn):
    from billiard.util import set_pdeathsig

    set_pdeathsig(signal.SIGKILL)
    stdlib_worker(conn)


def pool_worker(conn):
    from concurrent.futures import ProcessPoolExecutor

    # Under PYTHONOPTIMIZE the assert that forbids this is gone.
    # The fork start method explicitly: 3.14 defaults to the forkserver.
    fork = multiprocessing.get_context("fork")
    pool = fork.Pool(2)
    pool.map(square, range(4))
    executor = ProcessPoolExecutor(1, mp_context=fork)
    executor.submit(square, 3).result()
    pids = [p.pid for p in pool._pool] + list(executor._processes)
    conn.send(pids)
    time.sleep(600)


def fork_worker(conn):
    conn.send([fork_sleeper()])
    time.sleep(600)


def billiard_worker(conn):
    import billiard

    children = [billiard.Process(target=sleep_forever) for _ in range(2)]
    for child in children:
        child.start()
    conn.send([child.pid for child in children])
    time.sleep(600)


def run(context, target, daemon, kill=True):
    parent_end, child_end = context.Pipe()
    worker = context.Process(target=target, args=(child_end,), daemon=daemon)
    worker.start()
    children = parent_end.recv()
    # D's interpreter is read at its first fork, and each spawn judged within a second.
    time.sleep(1.5)
    if kill:
        os.kill(worker.pid, signal.SIGKILL)
        worker.join()
    return worker.pid, children


def main():
    mode = sys.argv[1]
    report = {"main": os.getpid(), "mode": mode, "daemonic": [], "children": [], "controls": []}
    fork = multiprocessing.get_context("fork")
    if mode == "stdlib":
        worker, children = run(fork, stdlib_worker, True)
    elif mode == "pool":
        worker, children = run(fork, pool_worker, True)
    elif mode == "pdeathsig":
        worker, children = run(fork, pdeathsig_worker, True)
    elif mode == "billiard":
        import billiard

        worker, children = run(billiard, billiard_worker, True)
    elif mode in ("spawn", "forkserver"):
        worker, children = run(multiprocessing.get_context(mode), fork_worker, True)
    elif mode == "control":
        import billiard

        controls = []
        for context, target in ((fork, stdlib_worker), (billiard, billiard_worker)):
            pid, kids = run(context, target, False, kill=False)
            controls.append(pid)
            report["children"] += kids
        report["controls"] = controls + [os.getpid()]
        report["children"].append(subprocess_sleeper())
        print(json.dumps(report), flush=True)
        os._exit(0)
    else:
        sys.exit("unknown mode " + mode)
    report["daemonic"] = [worker]
    report["children"] = children
    print(json.dumps(report), flush=True)
    # The orphans stay behind for the test to see and clean up.
    os._exit(0)


if __name__ == "__main__":
    main()
