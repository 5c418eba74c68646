"""Named classifier-training protocols: a protocol fills in the ClassifierConfig fields the user left unset.

- `standard`: the config as written (the papers' from-scratch protocol at full size: ResNet-18,
  SGD 0.1, 200 epochs; the embedded default is a small CNN for a few epochs).
- `hlb`: the papers' fast sweep classifier, after hlb-CIFAR10's HLB_S (spec puregen.md §8): the
  small residual `hlb_resnet` (width 16; HLB_S is width 64), 15 epochs, batch 128, Nesterov SGD with a triangular learning
  rate (linear up for a quarter of the steps, then linearly down), label smoothing 0.2, random
  crop + flip on the device. Wide sweeps then cost seconds per trial on a GPU.

Explicit values win: `classifier: {protocol: hlb, epochs: 5}` trains the HLB net for 5 epochs.
The protocol's name is a config field, so every MLflow run and sweep row records which protocol
produced its numbers.
"""

from __future__ import annotations

from typing import Any, Literal

Protocol = Literal["standard", "hlb"]

PROTOCOL_FIELDS: dict[str, dict[str, Any]] = {
    "standard": {},
    "hlb": {"arch": "hlb_resnet", "width": 16, "epochs": 15, "batch_size": 128, "lr": 0.1, "momentum": 0.9,
            "weight_decay": 5e-4, "label_smoothing": 0.2, "schedule": "triangular", "augment": True},
}


def protocol_defaults(protocol: Protocol, explicitly_set: set[str]) -> dict[str, Any]:
    """Return the field values protocol `protocol` fills in: its fields minus those in `explicitly_set`."""
    return {k: v for k, v in PROTOCOL_FIELDS[protocol].items() if k not in explicitly_set}
