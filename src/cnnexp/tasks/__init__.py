"""LightningModules, one per task; a model config's `task` key picks one."""

from importlib import import_module

TASKS = {
    "classification": "cnnexp.tasks.classification:ClassificationTask",
    "reconstruction": "cnnexp.tasks.reconstruction:ReconstructionTask",
}


def task_class(name: str):
    module, cls = TASKS[name].split(":")
    return getattr(import_module(module), cls)
