"""Config loading: YAML + includes + overrides, and one clear error naming the key."""

import pytest

from genlab.config import apply_overrides, flatten, load_config
from genlab.errors import ConfigError
from genlab.sweep.config import SweepConfig


def test_default_config_file_validates_and_the_extended_one_adds_the_simple_transforms():
    cfg = load_config(SweepConfig, "conf/defense_sweep.yaml")
    assert {a.key for a in cfg.attacks} == {"badnets", "blend", "narcissus"}
    puregen = {"none", "ebm", "ddpm", "puregen-naive", "puregen-reps", "puregen-filt"}
    assert {p.name for p in cfg.purifiers} == puregen
    extended = load_config(SweepConfig, "conf/defense_sweep_extended.yaml")
    assert {p.name for p in extended.purifiers} == puregen | {"jpeg", "gaussian_noise"}
    assert extended.model_dump(exclude={"purifiers"}) == cfg.model_dump(exclude={"purifiers"})  # only the purifiers differ


def test_overrides_reach_nested_keys_and_list_items(tmp_path):
    cfg = load_config(SweepConfig, "conf/defense_sweep_extended.yaml",
                      ["classifier.epochs=3", "attacks.1.epsilon=8", "seeds=[0,1,2]", "purifiers.1.quality=[25,75]"])
    assert cfg.classifier.epochs == 3 and cfg.attacks[1].epsilon == 8 and cfg.seeds == [0, 1, 2]
    assert [s.quality for s in cfg.purifiers[1].settings()] == [25, 75]


def test_include_merges_underneath(tmp_path):
    (tmp_path / "base.yaml").write_text("classifier: {epochs: 7, lr: 0.01}\n")
    (tmp_path / "top.yaml").write_text("include: [base.yaml]\nclassifier: {epochs: 2}\n")
    cfg = load_config(SweepConfig, tmp_path / "top.yaml")
    assert (cfg.classifier.epochs, cfg.classifier.lr) == (2, 0.01)


@pytest.mark.parametrize("overrides, key", [
    (["classifier.epochz=3"], "classifier.epochz"),
    (["classifier.epochs=many"], "classifier.epochs"),
    (["attacks.0.name=nosuchattack"], "attacks.0"),
    (["dataset.name=mnist"], "dataset.name"),
    (["purification.num_actors=0"], "purification.num_actors"),
])
def test_bad_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=rf"config key {key.replace('.', '[.]')}\b"):
        load_config(SweepConfig, "conf/defense_sweep.yaml", overrides)


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(SweepConfig, tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("classifier: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(SweepConfig, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["novalue"])


def test_flatten_gives_dotted_strings():
    assert flatten({"a": {"b": 1, "c": [2, 3]}, "d": []}) == {"a.b": "1", "a.c.0": "2", "a.c.1": "3", "d": "[]"}
