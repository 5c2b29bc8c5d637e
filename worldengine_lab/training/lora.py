"""Low-rank adapters (LoRA) for parameter-efficient post-training of the planner's scoring head.

``y = W x + b + (alpha / r) · B (A x)`` with ``A [r, in]`` (small random init) and ``B [out, r]`` (zeros), so an
adapted model starts exactly equal to its base. Only A and B train; :func:`merge_lora` folds them back into plain
``nn.Linear`` layers, so a post-trained checkpoint loads like any other.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ShapeError

__all__ = ["LoRALinear", "add_lora", "merge_lora", "HEAD_MODULES"]

HEAD_MODULES = ("ffn", "head")
"""Sub-modules of :class:`~worldengine_lab.planners.learned.VocabularyScorer` that form the planning (scoring)
head: the candidate feed-forward block and the output MLP."""


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-``rank`` update scaled by ``alpha / rank``."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if not (isinstance(rank, int) and 1 <= rank):
            raise ShapeError(f"LoRALinear(rank): expected an int >= 1, received {rank!r}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.scale = float(alpha) / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, dtype=base.weight.dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, dtype=base.weight.dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., in] -> [..., out]``."""
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` with ``W + scale · B A`` (same outputs, no adapter)."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.lora_b @ self.lora_a)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def _replace(module: nn.Module, rank: int, alpha: float) -> int:
    count = 0
    for name, child in list(module.named_children()):  # walks the module tree (a handful of layers)
        if isinstance(child, nn.Linear):
            setattr(module, name, LoRALinear(child, rank, alpha))
            count += 1
        elif not isinstance(child, LoRALinear):
            count += _replace(child, rank, alpha)
    return count


def add_lora(model: nn.Module, modules: tuple[str, ...] = HEAD_MODULES, rank: int = 16,
             alpha: float = 16.0) -> list[nn.Parameter]:
    """Freeze ``model`` and wrap every ``nn.Linear`` inside the named sub-modules with a LoRA adapter.

    Returns:
        the trainable adapter parameters (pass them to the optimiser).
    Raises:
        ShapeError: a name in ``modules`` is not a sub-module of ``model``, or it holds no linear layer.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    children = dict(model.named_children())
    for name in modules:
        if name not in children:
            raise ShapeError(f"add_lora(modules): {name!r} is not a sub-module of {type(model).__name__}; choose "
                             f"from {sorted(children)}")
        if _replace(children[name], rank, alpha) == 0:
            raise ShapeError(f"add_lora(modules): {name!r} holds no nn.Linear layer to adapt")
    return [p for n, p in model.named_parameters() if "lora_" in n]


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter of ``model`` into its linear layer, in place; returns ``model`` (all parameters
    trainable again)."""
    for name, child in list(model.named_children()):
        if isinstance(child, LoRALinear):
            setattr(model, name, child.merged())
        else:
            merge_lora(child)
    for p in model.parameters():
        p.requires_grad_(True)
    return model
