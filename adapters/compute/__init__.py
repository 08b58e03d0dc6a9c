"""Where independent CPU-bound tasks run: a local process pool or a Dask distributed cluster.

Both implement ``application.ports.TaskRunner``; the in-process runner for unit tests is
``adapters.memory.task_runner.InProcessTaskRunner``.
"""
