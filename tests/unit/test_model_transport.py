"""A model travels to the purifier actors as a sha256-checked bundle of bytes (genlab.purify.model_source), not as a
path on the driver; integration/test_cluster_security.py runs it across nodes that cannot see the driver's disk."""

import dataclasses

import numpy as np
import pytest
import torch

from genlab.checkpoints import INDEX, save_model
from genlab.errors import CheckpointError
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.ebm import EBM_KIND, EbmPurifier, EbmSettings
from genlab.purify.model_source import (
    bundle_checkpoint,
    model_sources,
    unbundle_checkpoint,
    with_model_sources,
)
from genlab.purify.puregen import PuregenNaiveSettings


@pytest.fixture
def ebm_checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_model(tmp_path / "driver" / "ebm", build_ebm(EbmNetConfig(nf=4)), kind=EBM_KIND)


def test_a_bundle_arrives_as_a_checkpoint_that_purifies_like_the_original(ebm_checkpoint, tmp_path):
    bundle = bundle_checkpoint(ebm_checkpoint, EBM_KIND)
    assert set(bundle.files) == {INDEX, "model.safetensors"}
    arrived = unbundle_checkpoint(bundle, tmp_path / "worker" / "0")
    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 1), dtype=np.uint8)
    outputs = [EbmPurifier(EbmSettings(checkpoint=str(path), langevin_steps=[3], device="cpu"), seed=1)
               .purify(images, np.arange(6))[3] for path in (ebm_checkpoint, arrived)]
    np.testing.assert_array_equal(*outputs)


def test_a_bundle_whose_weights_changed_in_transit_is_refused_in_one_line(ebm_checkpoint, tmp_path):
    bundle = bundle_checkpoint(ebm_checkpoint, EBM_KIND)
    weights = bytearray(bundle.files["model.safetensors"])
    weights[-1] ^= 0xFF
    damaged = dataclasses.replace(bundle, files={**bundle.files, "model.safetensors": bytes(weights)})
    with pytest.raises(CheckpointError, match=r"model\.safetensors on arrival has sha256 .* expected") as error:
        unbundle_checkpoint(damaged, tmp_path / "worker")
    assert "\n" not in str(error.value) and not (tmp_path / "worker").exists()  # nothing written


def test_a_checkpoint_corrupt_on_the_driver_is_refused_before_it_travels(ebm_checkpoint):
    weights = ebm_checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CheckpointError, match="on the driver has sha256"):
        bundle_checkpoint(ebm_checkpoint, EBM_KIND)


def test_every_nested_model_setting_is_found_and_rewritten():
    settings = PuregenNaiveSettings(ebm=EbmSettings(checkpoint="/head/work/ebm"),
                                    ddpm={"checkpoint": "/head/work/ddpm", "diffusion_start_steps": [5]})
    assert [s.checkpoint for s in model_sources(settings)] == ["/head/work/ebm", "/head/work/ddpm"]
    moved = with_model_sources(settings, lambda s: s.model_copy(update={"checkpoint": "/tmp/x" + s.checkpoint}))
    assert (moved.ebm.checkpoint, moved.ddpm.checkpoint) == ("/tmp/x/head/work/ebm", "/tmp/x/head/work/ddpm")
    assert settings.ebm.checkpoint == "/head/work/ebm"  # the original is unchanged
