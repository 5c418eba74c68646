"""De-biasing by structure modification (spec 6.5-6.6): cut the edge that carries an unwanted relationship.

A CCGM trained on biased data generates (a) a biased dataset (plain ancestral sampling),
(b) a de-biased one, with the bias edge a -> b cut (b's mechanism sees an independent draw of
a's marginal), and (c) "de-biased by do()": b set by do() to independent draws of its own
marginal, the only de-biasing a node-intervention model such as CausalVAE has; it removes the
legitimate parents' effect on b as well. Bias is measured two ways:

- the dependence the edge induced, |Pearson|, mutual information and HSIC (with its p-value)
  between a and b, in the true data and in both generated datasets, against the 95% band of
  independent data (for HSIC: p-value above 0.05 is the independent level);
- SkewSize of a classifier trained on each generated dataset. The classifier (logistic
  regression) predicts whether `target` exceeds its median from `features`; it is scored on
  a test set drawn from the true SCM with the bias edge cut (the world the de-biasing aims
  at), with the attribute binarised at its median. A classifier trained on biased data
  learns to use the attribute (e.g. to discount the group's inflated scores) and its
  predictions within each true class then depend on the attribute.

The legitimate dependencies must survive: the other parents' correlation with b in the
de-biased data is compared with the true edge-cut world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from genlab.causal.ccgm.metrics import dependence, independence_band
from genlab.causal.ccgm.model import CCGM
from genlab.causal.ccgm.sampling import sample
from genlab.causal.ccgm.skewsize import skewsize
from genlab.causal.interventions import cut_scm
from genlab.causal.scm import StructuralCausalModel


@dataclass(frozen=True)
class BiasTask:
    """What counts as bias: the edge to cut, and the downstream classification task that SkewSize audits."""

    edge: tuple[str, str]  # (parent, child) carrying the unwanted relationship
    features: tuple[str, ...]  # classifier inputs
    target: str  # classified as above / below its median in the training data
    attribute: str  # the spurious attribute, binarised at its median


def generate_debiased(model: CCGM, task: BiasTask, num_samples: int, *, seed: int) -> np.ndarray:
    """Return a de-biased dataset float64 [num_samples, n] (raw units): ancestral samples with the edge cut."""
    return sample(model, num_samples, seed=seed, cuts=[task.edge]).double().numpy()


def generate_do_debiased(model: CCGM, task: BiasTask, num_samples: int, *, seed: int, levels: int = 20) -> np.ndarray:
    """Return rows float64 [~num_samples, n] (raw units) "de-biased by do()": equal shares generated under
    do(b = c) for `levels` values c at evenly spaced quantiles of b's generated marginal, b the bias edge's child
    (a discretised do(b := an independent draw of its marginal))."""
    child = model.graph.nodes.index(task.edge[1])
    marginal = sample(model, num_samples, seed=seed).double().numpy()[:, child]
    values = np.quantile(marginal, (np.arange(levels) + 0.5) / levels)
    share = max(1, num_samples // levels)
    return np.concatenate([sample(model, share, seed=seed + 1 + i, interventions={task.edge[1]: float(v)}).double().numpy()
                           for i, v in enumerate(values)])


def classifier_skewsize(train: np.ndarray, test: np.ndarray, nodes: tuple[str, ...], task: BiasTask,
                        thresholds: dict[str, float], seed: int) -> dict[str, float]:
    """Train the task's classifier on `train` rows, score it on `test` rows; return skewsize and accuracy in [0, 1]."""
    columns = [nodes.index(name) for name in task.features]
    target, attribute = nodes.index(task.target), nodes.index(task.attribute)
    classifier = LogisticRegression(random_state=seed).fit(train[:, columns], train[:, target] > thresholds[task.target])
    labels = test[:, target] > thresholds[task.target]
    predictions = classifier.predict(test[:, columns])
    return {"skewsize": skewsize(labels, predictions, test[:, attribute] > thresholds[task.attribute]),
            "accuracy": float(np.mean(predictions == labels))}


def bias_report(model: CCGM, scm: StructuralCausalModel, train: np.ndarray, task: BiasTask, *, num_samples: int,
                seed: int) -> dict[str, float]:
    """Return the bias measures before and after de-biasing (flat dict of floats, see module docstring).

    Keys: `<measure>_<dataset>` for measure in abs_pearson / mutual_information / hsic / hsic_p_value (a vs b) and
    dataset in true / biased / debiased (edge cut; CCGM layer only) / do (de-biased by do()); `independence_band`;
    `kept_<p>_pearson_{debiased,do,truth}` for b's other parents p; `skewsize_<dataset>` and `accuracy_<dataset>`
    for the generated datasets.
    """
    nodes = scm.graph.nodes
    parent, child = (nodes.index(name) for name in task.edge)
    generated = {"biased": sample(model, num_samples, seed=seed).double().numpy()}
    if model.config.settings.causal_layer == "ccgm":
        generated["debiased"] = generate_debiased(model, task, num_samples, seed=seed)
    generated["do"] = generate_do_debiased(model, task, num_samples, seed=seed)
    world = cut_scm(scm, [task.edge], seed=seed).sample(num_samples, np.random.default_rng([seed, 11]))
    report: dict[str, float] = {"independence_band": independence_band(num_samples)}
    for name, data in (("true", train), *generated.items()):
        for measure, value in dependence(data[:, parent], data[:, child], seed=seed).items():
            report[f"{measure}_{name}"] = value
    for other in scm.graph.parents(task.edge[1]):
        if other != task.edge[0]:
            k = nodes.index(other)
            report[f"kept_{other}_pearson_truth"] = float(np.corrcoef(world[:, k], world[:, child])[0, 1])
            for name in set(generated) - {"biased"}:
                data = generated[name]
                report[f"kept_{other}_pearson_{name}"] = float(np.corrcoef(data[:, k], data[:, child])[0, 1])
    thresholds = {name: float(np.median(train[:, nodes.index(name)])) for name in (task.target, task.attribute)}
    for name, data in generated.items():
        scores = classifier_skewsize(data, world, nodes, task, thresholds, seed)
        report[f"skewsize_{name}"], report[f"accuracy_{name}"] = scores["skewsize"], scores["accuracy"]
    return report
