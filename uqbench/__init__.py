"""uqbench: a benchmark and leaderboard for uncertainty quantification with efficient
transformer ensembles. The benchmark lives in ``uqbench.bench``, the methods in
``uqbench.methods``; ``python -m uqbench`` (or the ``uqbench`` command) runs it."""

__version__ = "0.1.0"
