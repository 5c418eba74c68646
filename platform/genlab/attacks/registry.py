"""Every attack by name: `AttackConfig` is the union of every attack's config, told apart by `name`;
`craft_poisons` dispatches a backdoor (or imported) config to its crafting function, and
`TARGETED_CRAFTERS` holds the per-trial crafting functions of the targeted attacks. A new attack adds its
config class to the union and its function to `CRAFTERS` or `TARGETED_CRAFTERS`. The defense-aware
Narcissus configs (`NarcissusAwareConfig`) are crafted with the purifier their caller passes.
"""

from __future__ import annotations

from typing import Annotated, Callable, Union

from pydantic import Field

from genlab.attacks.backdoor.badnets import BadNetsConfig, craft_badnets
from genlab.attacks.backdoor.blend import BlendConfig, craft_blend
from genlab.attacks.backdoor.hidden_trigger import HiddenTriggerConfig, craft_hidden_trigger
from genlab.attacks.backdoor.narcissus import NarcissusAwareConfig, NarcissusConfig, PixelTransform, craft_narcissus
from genlab.attacks.backdoor.sleeper_agent import SleeperAgentConfig, craft_sleeper_agent
from genlab.attacks.imported import ImportedPoisonConfig, load_imported
from genlab.attacks.targeted.bullseye_polytope import BullseyePolytopeConfig, craft_bullseye_polytope
from genlab.attacks.targeted.gradient_matching import GradientMatchingConfig, craft_gradient_matching
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet

AttackConfig = Annotated[Union[BadNetsConfig, BlendConfig, ImportedPoisonConfig, NarcissusConfig, NarcissusAwareConfig,
                               HiddenTriggerConfig, SleeperAgentConfig, GradientMatchingConfig, BullseyePolytopeConfig],
                         Field(discriminator="name")]

CRAFTERS: dict[str, Callable[..., PoisonSet]] = {"badnets": craft_badnets, "blend": craft_blend,
                                                 "imported": load_imported, "narcissus": craft_narcissus,
                                                 "hidden_trigger": craft_hidden_trigger,
                                                 "sleeper_agent": craft_sleeper_agent}

# Targeted attacks, crafted per trial: (cfg, train, test, trial, seed, progress) -> PoisonSet (genlab.attacks.crafting).
TARGETED_CRAFTERS: dict[str, Callable[..., PoisonSet]] = {"gradient_matching": craft_gradient_matching,
                                                          "bullseye_polytope": craft_bullseye_polytope}


def craft_poisons(cfg: BadNetsConfig | BlendConfig | ImportedPoisonConfig | NarcissusConfig | HiddenTriggerConfig
                  | SleeperAgentConfig, train: ImageSet, seed: int,
                  transform: PixelTransform | None = None) -> PoisonSet:
    """Return the PoisonSet that attack `cfg` crafts against the clean training set `train`.

    `transform`: the defender's purifier, which the defense-aware attacks (NarcissusAwareConfig) need.
    """
    if isinstance(cfg, NarcissusAwareConfig):
        return craft_narcissus(cfg, train, seed, transform=transform)
    return CRAFTERS[cfg.name](cfg, train, seed)
