"""Networks read off the shape plan: `geometry` (the formulas, no torch), `convnet` and `convae`
(the torch modules), `modules` (the few layers torch lacks), `table` (the printed plan).

Each task names its network (`tasks.TASKS` is the one list of task names).
"""


def build_network(model_settings):
    """The network of the model's task, built from its shape plan."""
    from cnnexp.tasks import task_class

    return task_class(model_settings.task).network(model_settings)
