"""Task name → :class:`~attnlab.synthetic.base.Task`, imported lazily.

Each task lives in its own module exposing a module-level ``TASK``. Modules are imported only when
their task is asked for, so a task whose module is missing or broken fails with a clear message for
that task alone.
"""

from __future__ import annotations

import importlib

from attnlab.synthetic.base import Task

#: Task name → ``"module:attribute"`` of its :class:`Task`.
TASKS: dict[str, str] = {
    "icl": "attnlab.synthetic.icl:TASK",
    "ocr": "attnlab.synthetic.ocr:TASK",
    "laundry": "attnlab.synthetic.laundry:TASK",
}


class TaskUnavailableError(LookupError):
    """The task is unknown, or its module cannot be imported."""


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> Task:
    """Import and return the task called ``name`` (``icl``, ``ocr`` or ``laundry``)."""
    if name not in TASKS:
        raise TaskUnavailableError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    module_name, attribute = TASKS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise TaskUnavailableError(
            f"task {name!r} is not available: importing {module_name} failed ({error})"
        ) from error
    task = getattr(module, attribute, None)
    if not isinstance(task, Task):
        raise TaskUnavailableError(f"{module_name} does not define a Task named {attribute}")
    return task
