"""``proxylessnas.zoo.create(name, num_classes=1000, pretrained_path=None)``: the model zoo."""

from proxylessnas.nets.zoo import ZOO, ZooEntry, create, get_entry, list_models

__all__ = ["ZOO", "ZooEntry", "create", "get_entry", "list_models"]
