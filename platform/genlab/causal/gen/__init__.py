"""Causal Gen and Causal Variational Gen (spec section 5): model comparison and structural hypothesis test.

Modules: config (job configs), tables (data per seed), train (fitting replicas, OOD scoring),
trials (Ray Tune trainable + nested-run callback), runner (what both jobs do around their
trials), comparison and hypothesis (the two jobs), ranking (parsimony ranking), report (text
tables). The networks are genlab.models.causal.
"""
