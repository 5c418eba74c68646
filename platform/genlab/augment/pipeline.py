"""The LAVAE pipeline: encoder -> latent maps -> decoder head, and its safetensors checkpoint.

Like a diffusers pipeline it only joins parts that are defined elsewhere (`genlab.models.vae`
for the networks, `genlab.models.latent_maps` for the maps) and owns no training logic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from genlab.errors import CheckpointError
from genlab.fileio import atomic_directory, write_json_atomic
from genlab.models.latent_maps import LatentMaps
from genlab.models.vae import LatentAugmentVAE, VAEConfig

EVAL_BATCH = 1024


class LatentAugmentPipeline:
    """Augments images in latent space: x -> decode_head(mu(x) L_a1 L_a2 ...).

    `heads` names what each decoder head was trained for: head 0 the maps' own pair, then one
    transfer pair per head added with `add_head`.
    """

    def __init__(self, vae: LatentAugmentVAE, maps: LatentMaps, heads: Sequence[str] | None = None) -> None:
        self.vae, self.maps = vae, maps
        self.heads = list(heads) if heads is not None else ["-".join(maps.names)]

    def add_head(self, name: str) -> int:
        """Add a fresh decoder head for pair `name` (stage 3); return its index."""
        self.heads.append(name)
        return self.vae.add_head()

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Return z = mu(x) [N, d] (no sampling at inference) on the model's device."""
        return self.vae.posterior(images)[0]

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, head: int = 0) -> torch.Tensor:
        """Return decoder `head`'s images for latents [N, d]: CPU, [N,1,D,D], values in (0,1)."""
        self.vae.eval()
        return torch.cat([self.vae.decode(latents[i:i + EVAL_BATCH], head).cpu()
                          for i in range(0, len(latents), EVAL_BATCH)])

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, names: Sequence[str], head: int = 0) -> torch.Tensor:
        """Return images [N,1,D,D] in (0,1): `images` encoded (z = mu), mapped by `names` in order, decoded."""
        return self.decode(self.maps(self.encode(images), names), head)

    def repeat(self, images: torch.Tensor, name: str, steps: int, head: int = 0) -> list[torch.Tensor]:
        """Return [x_1, ..., x_steps] with x_k = decode(mu(x_{k-1}) L_name), x_0 = images (recursive stability)."""
        outputs, current = [], images
        for _ in range(steps):
            current = self(current, [name], head)
            outputs.append(current)
        return outputs

    def save(self, directory: Path) -> Path:
        """Write `model.safetensors` and `config.json` (shape, map names, head names) atomically; return the dir."""
        with atomic_directory(Path(directory)) as tmp:
            tensors = {f"vae.{k}": v.detach().cpu().contiguous() for k, v in self.vae.state_dict().items()}
            tensors.update({f"maps.{k}": v.detach().cpu().contiguous() for k, v in self.maps.state_dict().items()})
            save_file(tensors, str(tmp / "model.safetensors"))
            write_json_atomic(tmp / "config.json", {"vae": self.vae.config.model_dump(), "maps": self.maps.names,
                                                    "heads": self.heads})
        return Path(directory)

    @classmethod
    def load(cls, directory: Path) -> "LatentAugmentPipeline":
        """Return the pipeline saved by `save` in `directory` (CPU, eval mode); CheckpointError if unreadable."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / "config.json").read_text())
            tensors = load_file(str(directory / "model.safetensors"))
            vae = LatentAugmentVAE(VAEConfig.model_validate(meta["vae"]))
            for _ in meta["heads"][1:]:
                vae.add_head()
            maps = LatentMaps(meta["maps"], vae.config.latent_dim)
            vae.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("vae.")})
            maps.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("maps.")})
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"cannot load a LAVAE pipeline from {directory}: {exc}") from exc
        return cls(vae.eval(), maps, meta["heads"])
