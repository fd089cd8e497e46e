"""Megatron-LM's GPT pre-training with syne's ordered stream as its data.

Written by `syne plan RECIPE --megatron OUT` next to the export; the stage launch snippets
(`OUT/stage-K-NAME.sh`) run it under torchrun with SYNE_EXPORT=OUT. It is Megatron-LM's own
`pretrain_gpt.py` (importable from a Megatron-LM checkout on PYTHONPATH) with one change: the
datasets come from `syne_megatron.datasets_provider`, which serves the export's sequences in
order, instead of GPTDataset's blended, shuffled documents. Model, forward step and loss are
pretrain_gpt's.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pretrain_gpt  # noqa: E402  (Megatron-LM's, on PYTHONPATH)
from megatron.core.enums import ModelType  # noqa: E402
from megatron.training import pretrain  # noqa: E402

import syne_megatron  # noqa: E402

if __name__ == "__main__":
    provider = syne_megatron.datasets_provider(os.environ["SYNE_EXPORT"])
    model_provider = getattr(pretrain_gpt, "model_provider")
    if hasattr(pretrain_gpt, "gpt_builder"):
        # Megatron-LM 0.14+: the model provider takes the builder as its first argument.
        from functools import partial

        model_provider = partial(model_provider, pretrain_gpt.gpt_builder)
    pretrain(provider, model_provider, ModelType.encoder_or_decoder, pretrain_gpt.forward_step, args_defaults={"tokenizer_type": "HuggingFaceTokenizer"})
