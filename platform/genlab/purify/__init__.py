"""Purifiers (model + sampler transforms and baselines), the Ray Data stage and the cache.

`PurifierConfig` is the union of every purifier's settings, told apart by `name`;
`build_purifier` turns one concrete setting into a `Purifier` (both in `genlab.purify.registry`).
"""

from genlab.purify.base import Purifier, PurifierSettings
from genlab.purify.registry import PurifierConfig, build_purifier

__all__ = ["Purifier", "PurifierConfig", "PurifierSettings", "build_purifier"]
