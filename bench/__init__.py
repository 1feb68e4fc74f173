"""The benchmark: data, tasks, runner, metrics, cost and report, imported as ``uqbench.bench``."""

if __name__ != "uqbench.bench":  # a second import name would build a second set of registries
    raise ImportError(f"import uqbench.bench, not {__name__!r}: each module has one import name")
