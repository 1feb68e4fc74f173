"""Hydra Ensembles (Gabetni, Curci et al., "Ensembling Pruned Attention Heads For
Uncertainty-Aware Efficient Transformers", arXiv 2510.18358, ICLR 2026).

``importance``: head scores (Taylor, circuit) and the (Gumbel) top-k selection;
``prune``: a member = the single model with only its kept heads' weights;
``fuse``: M members -> one StreamTransformer with grouped attention and a merged MLP;
``method``: the registered ``hydra`` UQMethod tying them together.
"""

from .fuse import fuse
from .importance import circuit_select, select_heads, taylor_scores
from .method import Hydra
from .prune import prune

__all__ = ["Hydra", "circuit_select", "fuse", "prune", "select_heads", "taylor_scores"]
