"""Causal generative modelling: networkx graph priors, pendulum and SCM data, and two wings.

Shared modules, one job each: graph (YAML -> validated DAG, matrices), candidates (edits, SHD),
scm (tabular SCMs), random_graphs (random true DAGs), sachs (the Sachs protein data, from cdt),
pendulum (images and labels), splits (tail and random splits, standardisation),
interventions (do and edge cuts on the true SCM), dependence (HSIC), mic (MIC / TIC),
drawing (PNG graphs), job (the MLflow run, summary.json and reports every causal job writes).

- gen/: Causal Gen / Causal Variational Gen against non-causal baselines and the structural
  hypothesis test (spec section 5), trials on Ray Tune. The networks are genlab.models.causal.
- ccgm/: CCGM, the Causal Counterfactual Generative Model and its CausalVAE-style baseline
  (spec section 6): causal layers, model, fitting, sampling and counterfactuals, metrics,
  pendulum images, de-biasing and SkewSize.
"""
