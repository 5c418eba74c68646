"""Targeted (triggerless, clean-label) attacks: poisons that make a victim misclassify one chosen test
image, crafted per trial (gradient_matching, bullseye_polytope), and how their success is measured."""

from genlab.attacks.targeted.bullseye_polytope import BullseyePolytopeConfig
from genlab.attacks.targeted.gradient_matching import GradientMatchingConfig

__all__ = ["BullseyePolytopeConfig", "GradientMatchingConfig"]
