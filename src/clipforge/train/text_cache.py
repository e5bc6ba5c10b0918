"""Features of a frozen text tower, computed once per distinct caption.

With the text tower locked (LiT), a caption's features never change during a run (its
projected features, or with the projection trainable its pooled features before the
projection), and the same few thousand captions come back every epoch: after the first
epoch the text tower does not run at all.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class TextFeatureCache:
    """Maps a caption's tokens (padding excluded) to its unnormalised features (whatever ``encode`` returns)."""

    def __init__(self) -> None:
        self._features: dict[tuple[int, ...], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._features)

    def __call__(self, encode: Callable[..., torch.Tensor], **text_inputs: torch.Tensor) -> torch.Tensor:
        ids = text_inputs["input_ids"]
        mask = text_inputs.get("attention_mask")
        rows = ids.tolist() if mask is None else [r[m.bool()].tolist() for r, m in zip(ids, mask)]
        keys = [tuple(row) for row in rows]
        missing = sorted({i for i, key in enumerate(keys) if key not in self._features})
        if missing:
            index = torch.tensor(missing, device=ids.device)
            fresh = encode(**{name: value.index_select(0, index) for name, value in text_inputs.items()})
            for i, row in zip(missing, fresh.detach()):
                self._features[keys[i]] = row
        return torch.stack([self._features[key] for key in keys])
