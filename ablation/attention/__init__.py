"""Attention modules under study, behind one registry.

Every module shares the constructor shape ``(channels, **options)`` and maps a
``(N, C, H, W)`` tensor to a tensor of the same shape.
"""

from __future__ import annotations

from torch import nn

from .registry import ATTENTIONS, attention_options, build_attention, is_attention

__all__ = ["ATTENTIONS", "attention_options", "build_attention", "is_attention", "nn"]
