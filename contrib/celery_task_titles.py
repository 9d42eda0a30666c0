"""Names the running task in a Celery prefork pool worker's process title.

Celery titles a pool worker `[celeryd: w1@host:ForkPoolWorker-2]` whatever it runs, so a
process tracer (or `ps`) cannot tell which task started a child, was killed by a hard time
limit, or left an orphan. With this module imported, the title carries the task while it runs:

    [celeryd: w1@host:ForkPoolWorker-2] tasks.resize[5b0e1c9a-2f7d-4c71-9a43-0c3e8d1f2b6a]

and goes back to the plain title when the task returns. The tracer's built-in rules read the
task's name and id from it (identity `celery_task`, `celery_task_id`), and children forked by
the task keep them.

Use: import it from the module that creates the Celery app (`import celery_task_titles`), or
list it in the app's `imports`. It needs setproctitle, as Celery's own titles do; without it,
it does nothing. A task renames its process twice (start and end), a few microseconds each.
"""

from billiard.process import current_process
from celery import platforms
from celery.signals import task_postrun, task_prerun


def _in_pool_worker():
    # The solo and threads pools run tasks in the main process, whose title is Celery's own.
    return current_process().name.startswith("ForkPoolWorker")


@task_prerun.connect
def _title_with_task(task_id=None, task=None, **_):
    if task is not None and _in_pool_worker():
        platforms.set_mp_process_title(
            "celeryd", info=f"{task.name}[{task_id}]", hostname=task.request.hostname
        )


@task_postrun.connect
def _plain_title(task=None, **_):
    if task is not None and _in_pool_worker():
        platforms.set_mp_process_title("celeryd", hostname=task.request.hostname)
