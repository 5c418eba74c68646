"""Composable latent augmentation (LAVAE, spec ../shared/specs/latent_aug.md).

The networks (VAEs, the d x d latent maps) live in `genlab.models.vae` and
`genlab.models.latent_maps`; here: the encode -> maps -> decode `pipeline.py`, augmentations,
data, the three training `stages.py`, `metrics.py`; `experiment.py` runs one experiment,
`sweep.py` many on Ray Tune, `runner.py` records them in MLflow.
"""
