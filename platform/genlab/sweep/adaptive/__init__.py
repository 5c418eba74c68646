"""Adaptive evaluation: attacks that know the purifier (layer 2: it joins purify/ and attacks/).

Test time (`evaluation`): the purifier as an input transform (`transforms`) in front of a
classifier, attacked through BPDA + EOT (`eot`) with torchattacks (`robustness`), with the
checklist's sanity checks (`sanity`). Train time (`aware`): defense-aware Narcissus crafted through
the purifier and compared with the plain trigger after purification.
"""

from genlab.sweep.adaptive.aware import compare_triggers, craft_aware
from genlab.sweep.adaptive.eot import PurifiedClassifier, bpda
from genlab.sweep.adaptive.evaluation import AdaptiveEvalConfig, last_line, run_adaptive_eval

__all__ = ["AdaptiveEvalConfig", "PurifiedClassifier", "bpda", "compare_triggers", "craft_aware", "last_line",
           "run_adaptive_eval"]
