"""Training configs (conf/train_ebm.yaml, conf/train_ddpm.yaml overrides) of generative models small enough to
train in seconds: for tests of a sweep's plumbing, not of the models' effect (integration/test_ebm.py and
test_ddpm.py test real models)."""

TINY_EBM = {"model": {"arch": "conv", "nf": 4}, "iterations": 4, "batch_size": 8, "bank_size": 32, "langevin_steps": 2,
            "log_every": 2, "checkpoint_every": 2, "grid_size": 2, "purify_steps": 2}
TINY_DDPM = {"model": {"block_out_channels": [4, 8, 8], "attention_head_dim": 4}, "iterations": 4, "batch_size": 8,
             "warmup_steps": 1, "log_every": 2, "checkpoint_every": 2, "grid_size": 2, "purify_steps": 2}
