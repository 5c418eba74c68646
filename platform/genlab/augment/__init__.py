"""Composable latent augmentation (LAVAE, spec ../shared/specs/latent_aug.md).

Networks in `model.py`, the d x d latent maps in `latent_maps.py`, the encode -> maps ->
decode `pipeline.py`; augmentations, data, the three training `stages.py`, `metrics.py`;
`experiment.py` runs one experiment, `sweep.py` many on Ray Tune, `runner.py` records them.
"""
