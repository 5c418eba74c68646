"""The defense sweep: `runner.run_sweep` runs its five steps (provision models, craft, purify, trials, report)."""
