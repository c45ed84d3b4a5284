"""Networks by task: each model config names its task, and the task picks the network.

Kept free of torch imports so that `cnnexp.models.geometry` can run in the settings check.
"""

from importlib import import_module

NETWORKS = {
    "classification": "cnnexp.models.convnet:ConvClassifier",
    "reconstruction": "cnnexp.models.convae:ConvAutoencoder",
}


def build_network(model_settings):
    module, name = NETWORKS[model_settings.task].split(":")
    return getattr(import_module(module), name)(model_settings)
