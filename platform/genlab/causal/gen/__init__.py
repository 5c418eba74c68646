"""Causal Gen and Causal Variational Gen (spec section 5): model comparison and structural hypothesis test.

Modules: config (job configs), tables (data per seed), train (fitting replicas, OOD scoring),
trials (Ray Tune trainable + nested-run callback), runner (what both jobs do around their
trials), comparison and hypothesis (the two Ray jobs), ranking (parsimony ranking), report (text
tables), generation (ancestral sampling, energy distance) and synthesis (the generation job),
power (the hypothesis test's power over random graphs) and consensus (the Sachs ranking job).
The networks are genlab.models.causal.
"""
