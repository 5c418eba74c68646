"""Poison crafting, in two wings over shared machinery.

- `backdoor/`: attacks whose poisons teach a trigger (badnets, blend, narcissus, hidden_trigger,
  sleeper_agent) and what they share (`backdoor.base`).
- `targeted/`: attacks that flip chosen test images (gradient_matching, bullseye_polytope), what they
  share (`targeted.base`), the trials protocol, success rates and efficacy against victims.
- Shared: the registry (`AttackConfig`, `craft_poisons`), the crafting cache (`crafting`), the importer of
  external poisons (`imported`), the projected optimiser (`projected`), the attacker's surrogate models
  (`surrogate`), gradient alignment (`gradient_alignment`) and collided features (`features`).

The PoisonSet format lives in `genlab.data.poisonset`.
"""

from genlab.attacks.backdoor import BadNetsConfig, BlendConfig, HiddenTriggerConfig, NarcissusConfig, SleeperAgentConfig
from genlab.attacks.imported import ImportedPoisonConfig
from genlab.attacks.registry import TARGETED_CRAFTERS, AttackConfig, craft_poisons
from genlab.attacks.targeted.bullseye_polytope import BullseyePolytopeConfig
from genlab.attacks.targeted.gradient_matching import GradientMatchingConfig

__all__ = ["AttackConfig", "BadNetsConfig", "BlendConfig", "BullseyePolytopeConfig", "GradientMatchingConfig",
           "HiddenTriggerConfig", "ImportedPoisonConfig", "NarcissusConfig", "SleeperAgentConfig", "TARGETED_CRAFTERS",
           "craft_poisons"]
