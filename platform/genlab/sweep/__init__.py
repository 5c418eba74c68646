"""The defense sweep: config, planning, the Tune trainable, MLflow mirroring and reports."""
