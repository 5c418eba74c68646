"""A sweep's generative purifier that names its checkpoint gets no model trained (training on first use:
integration/test_sweep_models.py)."""

from genlab.purify.ebm import EbmSettings
from genlab.sweep.provisioning import provide_models


def test_settings_with_a_checkpoint_are_left_alone(digits, tmp_path):
    settings = EbmSettings(checkpoint=str(tmp_path / "given"))
    assert provide_models(settings, {}, None, digits[0], tmp_path) is settings
