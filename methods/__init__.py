"""UQ methods for transformers behind one contract (``UQMethod``) and one registry.

Adding a method = one new module with a ``@register``-ed class + one import line below.
"""

if __name__ != "uqbench.methods":  # a second import name would build a second registry
    raise ImportError(f"import uqbench.methods, not {__name__!r}: each module has one import name")

from .base import REGISTRY, ConfigError, Task, UQMethod, create, load, register

# Each import registers its method(s).
from . import single  # noqa: F401,E402
from . import deep_ensembles  # noqa: F401,E402
from . import mc_dropout  # noqa: F401,E402
from . import batch_ensemble  # noqa: F401,E402
from . import packed  # noqa: F401,E402
from . import hydra  # noqa: F401,E402
from . import tu_resnet  # noqa: F401,E402
from . import lora_ensemble  # noqa: F401,E402

__all__ = ["REGISTRY", "ConfigError", "Task", "UQMethod", "create", "load", "register"]
