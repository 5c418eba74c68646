"""Causal generative modelling: networkx graph priors, pendulum and SCM data, Causal Gen /
Causal Variational Gen with their baselines, and structural hypothesis tests.

Modules, one job each: graph (YAML -> validated DAG, matrices), candidates (edits, SHD),
pendulum (images and labels), scm (tabular SCMs), splits (OOD splits, standardisation),
models (networks), train (fitting and OOD scoring), ranking (parsimony ranking), trials
(Ray Tune trainable + MLflow callback), runner / hypothesis / comparison (the two jobs),
drawing and report (PNG graphs, tables), tables (data per seed), config (job configs).
CCGM (spec section 6): ccgm_layers (gated DAG-masked causal layer, CausalVAE-style baseline),
ccgm (the model and its losses), ccgm_fit (causal then generative phase), interventions (do,
counterfactuals, edge cuts; on the model and on the true SCM), ccgm_metrics, ccgm_images
(pendulum grids, counterfactual fidelity), debias and skewsize, ccgm_config / ccgm_jobs.
"""
