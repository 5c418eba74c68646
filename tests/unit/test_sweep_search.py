"""The sweep's search options are validated naming the key (the search modes on real Ray + MLflow:
integration/test_sweep_search.py)."""

import pytest

from genlab.config import load_config
from genlab.errors import ConfigError
from genlab.sweep.config import SweepConfig
from tests.helpers import REPO


@pytest.mark.parametrize("overrides, message", [
    (["tune.search=random"], "tune.search"),
    (["tune.search=asha", "tune.asha.grace_period=2"], "tune.asha.grace_period"),
])
def test_bad_search_options_name_the_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(SweepConfig, REPO / "conf/defense_sweep.yaml", ["classifier.epochs=2", f"work_dir={tmp_path}",
                                                                   *overrides])
