"""The metric catalogue: every metric key a result file holds, with its title, direction and a
one-line definition, stated once.

A key is a scope and a metric name, ``<scope>/<name>``: ``test/acc``, ``ood_far/auroc_msp``,
``shift/contrast/3/ece``. Scopes name the evaluated sets (a placeholder such as ``{set}`` stands
for any set name), names the quantity; ``{score}`` in a name stands for each OOD score kind of
``OOD_SCORES``. Tables, the HTML page, figures, the study, ``rescore``, the intervals and the
claims read titles and directions from here; ``scoring`` reads which names each scope holds.
Adding a metric means its computation in ``metrics.py``, one line here and a ``rescore``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# OOD score kinds, higher = more likely OOD (``metrics.ood_scores``); a new kind is one line here
OOD_SCORES = {
    "msp": "negated max probability of the mean prediction",
    "entropy": "entropy of the mean prediction",
    "mi": "mutual information between prediction and member (0 for one member)",
    "energy": "negated log-sum-exp of the mean member logits (energy score)",
    "maxlogit": "negated largest mean member logit",
}
DEFAULT_SCORE = "msp"  # the score of the main tables, the claims and the intervals


@dataclass(frozen=True)
class Metric:
    name: str  # the key's last part; "{score}" stands for each OOD score kind
    title: str
    higher: bool | None  # higher is better; None: no better direction
    definition: str


IN_DISTRIBUTION = (
    Metric("acc", "Acc", True, "top-1 accuracy"),
    Metric("nll", "NLL", False, "negative log-likelihood of the predictive distribution (mean of member softmaxes)"),
    Metric("brier", "Brier", False, "squared error to the one-hot label, summed over classes"),
    Metric("ece", "ECE", False, "expected calibration error, 15 equal-width bins of top-label confidence"),
    Metric("aurc", "AURC", False, "area under the risk-coverage curve of max-probability confidence"),
    Metric("disagreement", "Disagreement", None, "fraction of member pairs whose top-1 predictions differ"),
)
DETECTION = (
    Metric("auroc_{score}", "AUROC", True, "area under the ROC curve of OOD detection"),
    Metric("aupr_{score}", "AUPR", True, "average precision of OOD detection, OOD positive"),
    Metric("fpr95_{score}", "FPR95", False,
           "fraction of OOD samples accepted at the threshold keeping 95 % of in-distribution samples"),
)
SHIFTED = tuple(m for m in IN_DISTRIBUTION if m.name in ("acc", "nll", "ece"))  # each corrupted set's


@dataclass(frozen=True)
class Scope:
    pattern: str  # the key's leading parts
    title: str  # "{}" takes the metric's title
    sets: str  # what was evaluated
    metrics: tuple[Metric, ...]


SCOPES = (
    Scope("test", "{}", "the in-distribution test set", IN_DISTRIBUTION),
    Scope("val", "val {}", "the held-out validation split", IN_DISTRIBUTION),
    Scope("ood/{set}", "{set} {}", "one OOD set against the test set", DETECTION),
    Scope("ood_near", "{} near", "averaged over near-OOD sets", DETECTION),
    Scope("ood_far", "{} far", "averaged over far-OOD sets", DETECTION),
    Scope("ood_mean", "{}", "averaged over all OOD sets", DETECTION),
    Scope("ood_val", "val {}", "'ood_val' against the validation split", DETECTION),
    Scope("shift/mean", "Shift {}", "averaged over every corruption and severity", SHIFTED),
    Scope("shift/sev{severity}", "severity {severity} {}", "averaged over corruptions at one severity", SHIFTED),
    Scope("shift/{corruption}/{severity}", "{corruption} {severity} {}", "one corruption at one severity", SHIFTED),
)
_PARTS = {"set": r"[^/]+", "corruption": r"[^/]+", "severity": r"\d+"}


@dataclass(frozen=True)
class Entry:
    """What one key is: its scope, its metric and the placeholders' values."""

    scope: Scope
    metric: Metric
    parts: dict[str, str]

    @property
    def title(self) -> str:
        score = self.parts.get("score", DEFAULT_SCORE)
        title = self.scope.title.format(self.metric.title, **self.parts)
        return title if score == DEFAULT_SCORE else f"{title} ({score})"

    @property
    def definition(self) -> str:
        score = self.parts.get("score")
        return self.metric.definition + (f", score: {OOD_SCORES[score]}" if score else "") + f"; {self.scope.sets}"


@functools.cache
def _patterns() -> list[tuple[re.Pattern, Scope, Metric]]:
    parts = {**_PARTS, "score": "|".join(map(re.escape, OOD_SCORES))}
    out = []
    for scope in SCOPES:
        for metric in scope.metrics:
            text = re.escape(f"{scope.pattern}/{metric.name}").replace(r"\{", "{").replace(r"\}", "}")
            out.append((re.compile(re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m[1]}>{parts[m[1]]})", text)), scope, metric))
    return out


def entries(key: str) -> list[Entry]:
    """Every catalogue entry whose pattern matches ``key`` (exactly one for a known key)."""
    return [Entry(s, m, match.groupdict()) for p, s, m in _patterns() if (match := p.fullmatch(key))]


def lookup(key: str) -> Entry:
    """The entry of ``key``; a key the catalogue does not know raises ``KeyError`` saying so."""
    found = entries(key)
    if len(found) != 1:
        raise KeyError(f"metric key {key!r} matches {len(found)} catalogue entries (bench/catalogue.py), not one")
    return found[0]


def title(key: str) -> str:
    return lookup(key).title


def higher(key: str) -> bool | None:
    return lookup(key).metric.higher


def arrow(key: str) -> str:
    """The title with its direction: "NLL ↓"."""
    return title(key) + {True: " ↑", False: " ↓", None: ""}[higher(key)]


# the headline metrics an ensemble-size sweep keeps (``rescore``)
SWEPT = ("test/acc", "test/nll", "test/ece", "ood_near/auroc_msp", "ood_far/auroc_msp", "ood_mean/auroc_msp",
         "ood_mean/fpr95_msp", "shift/mean/acc")
