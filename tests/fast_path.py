"""The CUDA fast path's arithmetic, run on a CPU so tests without a GPU can check what it computes."""

CUDA_RECIPE_ON_CPU = {"precision": "bf16", "channels_last": True, "dense_convs": False, "compile": False, "batch_size": 4096}
"""bf16 autocast, channels-last and a large batch: `device_fast_path(cuda)` and the CUDA batch, without compiling
(minutes on 2 CPU cores). Never what a CPU runs on its own: there `auto` is fp32."""
