"""Backdoor attacks: poisons that make a victim follow a trigger at test time (dirty-label badnets and
blend; clean-label narcissus, hidden_trigger and sleeper_agent)."""

from genlab.attacks.backdoor.badnets import BadNetsConfig
from genlab.attacks.backdoor.blend import BlendConfig
from genlab.attacks.backdoor.hidden_trigger import HiddenTriggerConfig
from genlab.attacks.backdoor.narcissus import NarcissusConfig
from genlab.attacks.backdoor.sleeper_agent import SleeperAgentConfig

__all__ = ["BadNetsConfig", "BlendConfig", "HiddenTriggerConfig", "NarcissusConfig", "SleeperAgentConfig"]
