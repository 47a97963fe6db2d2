"""Tasks: seeded problem generators with a fixed held-out split, extraction and scoring."""

from s3dsl.tasks.base import Problem, Task
from s3dsl.tasks.registry import TASKS, get_task

__all__ = ["TASKS", "Problem", "Task", "get_task"]
