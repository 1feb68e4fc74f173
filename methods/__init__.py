"""UQ methods for transformers behind one contract (``UQMethod``) and one registry.

Adding a method = one new module with a ``@register``-ed class + one import line below.
"""

from methods.base import REGISTRY, ConfigError, Task, UQMethod, create, load, register

# Each import registers its method(s).
from methods import single  # noqa: F401,E402
from methods import deep_ensembles  # noqa: F401,E402
from methods import mc_dropout  # noqa: F401,E402
from methods import batch_ensemble  # noqa: F401,E402
from methods import packed  # noqa: F401,E402
from methods import hydra  # noqa: F401,E402

__all__ = ["REGISTRY", "ConfigError", "Task", "UQMethod", "create", "load", "register"]
