"""Networks built from the shape plan (Conv1d/2d/3d as the data's axes), a shape comment on each step: `convnet` and `convae` (the
torch modules), `modules` (the few layers torch lacks), `onnx_network` (an exported network run
by onnxruntime, without torch)."""


def build_network(model_settings):
    """The network of the model's task, built from its shape plan."""
    from cnnexp.core.catalogue import task_class

    return task_class(model_settings.task).network(model_settings)
