"""Lightning DataModules over a features folder: the SoVITS and GPT stages' training and sample loaders."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from mockvox.audio.spectrogram import OFFICIAL, Spectrogram
from mockvox.data.datasets import GPTDataset, SovitsDataset, collate_gpt, collate_sovits


class _FeaturesDataModule(L.LightningDataModule):
    """Shared loaders: a shuffled, seeded training loader and a fixed two-item loader of samples."""

    collate = staticmethod(collate_gpt)

    def __init__(self, batch_size: int, num_workers: int, seed: int):
        super().__init__()
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def build(self, min_items: int) -> Dataset:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = self.build(self.min_items)
            full = self.build(0)
            self.val_set = Subset(full, range(min(2, len(full))))

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def sample_dataloader(self) -> DataLoader:
        """Two fixed items for :class:`~mockvox.train.callbacks.SampleCallback` (not a validation loop)."""
        self.setup()
        return self._loader(self.val_set, 1, shuffle=False)


class SovitsDataModule(_FeaturesDataModule):
    """SoVITS v2/v4 training data from a features folder (``min_frames``: the decoder segment, official 32).

    ``spectrogram`` (``cfg.model.spectrogram``) sets the items' spectrogram and the collate's samples per frame.
    """

    def __init__(
        self,
        features_dir: str | os.PathLike,
        version: str = "v2",
        batch_size: int = 1,
        num_workers: int = 0,
        min_items: int = 100,
        seed: int = 1234,
        min_frames: int = 32,
        spectrogram: Spectrogram | Mapping = OFFICIAL,
        **dataset_kwargs,
    ):
        super().__init__(batch_size, num_workers, seed)
        self.features_dir, self.version, self.min_items = Path(features_dir), version, min_items
        spectrogram = Spectrogram.from_mapping(spectrogram)
        self.dataset_kwargs = {**dataset_kwargs, "spectrogram": spectrogram}
        self.collate = partial(collate_sovits, min_frames=min_frames, hop_length=spectrogram.hop_length)

    def build(self, min_items: int) -> SovitsDataset:
        return SovitsDataset(self.features_dir, self.version, min_items=min_items, **self.dataset_kwargs)


class GPTDataModule(_FeaturesDataModule):
    """GPT (text-to-semantic) training data from a features folder."""

    def __init__(
        self,
        features_dir: str | os.PathLike,
        batch_size: int = 1,
        num_workers: int = 0,
        min_items: int = 100,
        seed: int = 1234,
        **dataset_kwargs,
    ):
        super().__init__(batch_size, num_workers, seed)
        self.features_dir, self.min_items = Path(features_dir), min_items
        self.dataset_kwargs = dataset_kwargs

    def build(self, min_items: int) -> GPTDataset:
        return GPTDataset(self.features_dir, min_items=min_items, **self.dataset_kwargs)
