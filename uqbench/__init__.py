"""uqbench: a benchmark and leaderboard for uncertainty quantification with efficient
transformer ensembles. The benchmark lives in ``uqbench.bench``, the methods in
``uqbench.methods``; ``python -m uqbench`` (or the ``uqbench`` command) runs it.

``uqbench.evaluate(predict, task=...)`` benchmarks your own model, ``uqbench.score_predictions``
a file of saved predictions and ``uqbench.export`` writes a task's evaluation sets
(``uqbench.bench.external``); they are imported on first use, so ``import uqbench`` stays fast."""

__version__ = "0.1.0"
__all__ = ["evaluate", "export", "score_predictions"]


def __getattr__(name: str):
    if name in __all__:
        from uqbench.bench import external

        return getattr(external, name)
    raise AttributeError(f"module 'uqbench' has no attribute {name!r}")
