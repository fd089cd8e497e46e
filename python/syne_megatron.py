"""Serve syne's exported sequence stream to Megatron-LM, in order.

`syne plan RECIPE --megatron OUT` writes the exact packed sequences syne's own trainer would
consume — curriculum order, sources continuing across stages, topic ratios of every interval —
as one Megatron indexed dataset of pre-packed sequences (`OUT/stream.{bin,idx}`, one "document"
= one sequence of seq_len + 1 tokens, the whole run in order), and `OUT/export.json` giving each
stage's range of it.

This module turns those files into the samples `pretrain_gpt.py`'s `forward_step` takes, without
Megatron's GPTDataset (which would re-split the sequences into documents and shuffle them): item
i is sequence i of the run, unchanged. Megatron's `MegatronPretrainingSampler`
(`--dataloader-type single`, the default) reads a dataset in index order from the samples a
checkpoint has consumed and shards each global batch over the data-parallel ranks, so the cluster
run consumes the stream in syne's order, and stage K's launch (`--train-samples` = the run's
sequences up to the end of stage K) continues where stage K-1's checkpoint stopped.

    from syne_megatron import SyneStreamDataset, datasets_provider
    ds = SyneStreamDataset("OUT/stream")       # megatron.core's IndexedDataset inside
    sample = ds[0]   # tokens, labels, loss_mask, attention_mask, position_ids (torch tensors)

Needs megatron-core (pinned: 0.16.1) and torch. The launch snippets `OUT/stage-K-NAME.sh` run
`OUT/pretrain_syne.py`, which passes `datasets_provider` to Megatron-LM's `pretrain()`.
"""
import json
import os

import numpy
import torch
from megatron.core.datasets.indexed_dataset import IndexedDataset


class SyneStreamDataset(torch.utils.data.Dataset):
    """A syne export: sequence i of the run as a Megatron GPT sample.

    `reset_at_eod` (the recipe's `doc_masking`) restarts positions and blocks attention at every
    EOD token, as Megatron's `--reset-position-ids --reset-attention-mask`; off (the paper's
    cross-document causal attention) every sequence is one causal block.
    """

    def __init__(self, prefix, eod=None, reset_at_eod=False, create_attention_mask=True):
        self.index = IndexedDataset(prefix, multimodal=False, mmap=True)
        self.eod = eod
        self.reset_at_eod = reset_at_eod and eod is not None
        self.create_attention_mask = create_attention_mask

    def __len__(self):
        return len(self.index)

    def sequence(self, i):
        """Sequence i's seq_len + 1 tokens, as stored."""
        return numpy.asarray(self.index[i], dtype=numpy.int64)

    def __getitem__(self, i):
        seq = torch.from_numpy(self.sequence(i))
        tokens, labels = seq[:-1].contiguous(), seq[1:].contiguous()
        n = tokens.numel()
        position_ids = torch.arange(n, dtype=torch.long)
        mask = torch.tril(torch.ones((n, n), dtype=torch.bool))
        if self.reset_at_eod:
            # A document ends at its EOD: what follows starts at position 0 and sees only itself.
            for e in (tokens == self.eod).nonzero().flatten().tolist():
                if e + 1 < n:
                    mask[e + 1:, : e + 1] = False
                    position_ids[e + 1:] -= position_ids[e + 1].item()
        sample = {"tokens": tokens, "labels": labels, "loss_mask": torch.ones(n, dtype=torch.float), "position_ids": position_ids}
        if self.create_attention_mask:
            # Megatron's convention: True where attention is NOT allowed.
            sample["attention_mask"] = (~mask).unsqueeze(0)
        return sample


def read_export(out):
    """`OUT/export.json`: the stages, their dataset prefixes and sequence counts."""
    with open(os.path.join(out, "export.json")) as f:
        return json.load(f)


def datasets_provider(out, reset_at_eod=None):
    """A `train_valid_test_datasets_provider` for Megatron-LM's `pretrain()` serving the export
    at `out` in order; no validation or test split (syne's held-out sets are scored by
    `syne eval`)."""
    export = read_export(out)
    reset = export["doc_masking"] if reset_at_eod is None else reset_at_eod

    def provider(train_val_test_num_samples):
        ds = SyneStreamDataset(os.path.join(out, export["prefix"]), eod=export.get("eod"), reset_at_eod=reset)
        if train_val_test_num_samples[0] > len(ds):
            raise ValueError(f"{train_val_test_num_samples[0]} training samples asked, the export holds {len(ds)}")
        return ds, None, None

    provider.is_distributed = True
    return provider
