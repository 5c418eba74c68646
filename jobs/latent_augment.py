"""Composable latent augmentation (LAVAE): learned latent maps vs CVAE and mean-shift, in MLflow.

Trains, per augmentation pair, a VAE (stage 1), one d x d latent map per augmentation
(stage 2) and a transfer decoder head per transfer pair (stage 3), plus the CVAE baseline;
measures whether z L1 L2 reproduces a2(a1(x)) without training on it. See
../shared/specs/latent_aug.md and conf/latent_augment.yaml.

Local (MLflow at sqlite:///mlflow.db in the working directory), about 2-3 minutes on 2 CPU cores:
    python jobs/latent_augment.py --out out/latent_augment
    python jobs/latent_augment.py --out out/lavae_rot 'pairs=[[rotate_cw,flip_lr]]' training.autoencoder.epochs=40
MNIST (torchvision's files under data/MNIST/raw; an error says what is missing):
    python jobs/latent_augment.py --out out/lavae_mnist data.name=mnist model.channels=64 model.latent_dim=16
A Ray Tune sweep (one trial per combination, nested MLflow runs):
    python jobs/latent_augment.py --out out/lavae_sweep 'sweep.grid={model.latent_dim: [4, 8], seed: [0, 1]}'
On a Ray cluster:
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \
        python jobs/latent_augment.py --out out/lavae_sweep 'sweep.grid={seed: [0, 1, 2]}'
Then look at the runs:
    mlflow ui --backend-store-uri sqlite:///mlflow.db
Writes OUT/summary.json (latent_map_bce, vae_recon_bce, compose_bce_lavae, compose_bce_cvae,
compose_bce_meanshift in nats/image; involution_error_flips, involution_error_other as
||I - L^2||_F) and OUT/artifacts/ (grids, transfer_matrix.png, models as safetensors).
Exit codes: 0 done, 1 a sweep trial failed, data are missing or OUT already holds results, 2 bad config.
"""

from genlab.augment.config import LatentAugmentConfig
from genlab.augment.runner import run_latent_augment
from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.workspace import in_workspace


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/latent_augment.yaml")
    cfg = load_config(LatentAugmentConfig, args.config, args.overrides)
    summary = run_latent_augment(cfg, args.out or in_workspace("out/latent_augment"))
    return 0 if all(trial["status"] == "FINISHED" for trial in summary.get("trials", [])) else 1


if __name__ == "__main__":
    run_job(main)
