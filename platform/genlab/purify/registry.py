"""The purifier registry: `PurifierConfig`, the union of every purifier's settings told apart by
`name`, and `build_purifier`, which turns one concrete setting into a `Purifier`."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from genlab.purify.base import Purifier, PurifierSettings
from genlab.purify.baselines import (
    GaussianNoisePurifier,
    GaussianNoiseSettings,
    IdentityPurifier,
    JpegPurifier,
    JpegSettings,
    NoneSettings,
)
from genlab.purify.ddpm import DdpmSettings
from genlab.purify.ebm import EbmPurifier, EbmSettings
from genlab.purify.puregen import PuregenFiltSettings, PuregenNaiveSettings, PuregenRepsSettings, build_puregen

PurifierConfig = Annotated[Union[NoneSettings, JpegSettings, GaussianNoiseSettings, EbmSettings, DdpmSettings,
                                 PuregenNaiveSettings, PuregenRepsSettings, PuregenFiltSettings],
                           Field(discriminator="name")]


def build_purifier(settings: PurifierSettings, *, seed: int) -> Purifier:
    """Return the Purifier for one concrete (already expanded) setting."""
    if isinstance(settings, JpegSettings):
        return JpegPurifier(settings.quality)
    if isinstance(settings, GaussianNoiseSettings):
        return GaussianNoisePurifier(settings.sigma, seed)
    if isinstance(settings, EbmSettings):
        return EbmPurifier(settings, seed)
    if isinstance(settings, (DdpmSettings, PuregenNaiveSettings, PuregenRepsSettings, PuregenFiltSettings)):
        return build_puregen(settings, seed=seed)
    return IdentityPurifier()
