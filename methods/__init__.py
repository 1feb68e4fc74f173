"""UQ methods for transformers behind one contract (``UQMethod``) and one registry.

Adding a method = one new module with a ``@register``-ed class + one import line below.
"""

if __name__ != "uqbench.methods":  # a second import name would build a second registry
    raise ImportError(f"import uqbench.methods, not {__name__!r}: each module has one import name")

from uqbench.methods.base import REGISTRY, ConfigError, Task, UQMethod, create, load, register

# Each import registers its method(s).
from uqbench.methods import single  # noqa: F401,E402
from uqbench.methods import deep_ensembles  # noqa: F401,E402
from uqbench.methods import mc_dropout  # noqa: F401,E402
from uqbench.methods import batch_ensemble  # noqa: F401,E402
from uqbench.methods import packed  # noqa: F401,E402
from uqbench.methods import hydra  # noqa: F401,E402
from uqbench.methods import tu_resnet  # noqa: F401,E402
from uqbench.methods import lora_ensemble  # noqa: F401,E402

__all__ = ["REGISTRY", "ConfigError", "Task", "UQMethod", "create", "load", "register"]
