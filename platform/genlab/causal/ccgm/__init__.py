"""CCGM, the Causal Counterfactual Generative Model (spec section 6), and its CausalVAE-style baseline.

Modules: layers (gated DAG-masked causal layer, CausalVAE layer), model (the model and its
losses), fit (causal then generative phase), sampling (do, counterfactuals, edge cuts on the
model), metrics, images (pendulum grids, counterfactual fidelity), debias and skewsize, config
and runner (the two jobs).
"""
