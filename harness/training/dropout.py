"""The harness's own dropout: keep masks drawn from the run's dropout generator by a path that is the same on
every x86 CPU (docs/method.md, Seeds and pairing; docs/performance.md, Dropout).

Why: torch's CPU dropout draws its mask with `bernoulli_`, which takes MKL's stream on Intel CPUs and a
per-element path elsewhere (its MKL path checks for an Intel vendor), so the same seed drew different masks
on Intel and AMD; on AMD it also cost 16-25% of a step. Here a mask comes from `random_` over int64 words of
a CPU torch.Generator (mt19937, the same software everywhere): each word gives four 16-bit fields, one per
element, low field first (every x86 CPU is little-endian), and an element is kept when its field, read as
a signed 16-bit number f in [-32768, 32768), satisfies f + 32768 >= t, t = round(p * 65536) (f + 32768 is
uniform on [0, 65536), so the keep probability is 1 - t / 65536). So p is used rounded to a
multiple of 1/65536 (0.1 -> 6554/65536 = 0.100006), and kept values are scaled by 65536 / (65536 - t), the
inverse of the keep probability actually drawn.

What it replaces, while `harness_dropout(generator)` is active (the training forward of `fit`):
  torch.nn.functional.dropout: what every nn.Dropout calls (hidden, embedding and pooler-head dropout, the
      attention-probability dropout of MPNet and DeBERTa) and what Hugging Face's eager attention calls;
  torch.nn.functional.scaled_dot_product_attention with dropout_p > 0 (the SDPA families' attention-
      probability dropout): the attention written out (scores, softmax, dropout, weighted sum) with this
      dropout; without dropout (evaluation) SDPA runs unchanged.
`DropoutAudit` checks a training forward for any other dropout draw (a family whose layers call torch's RNG
some other way is refused, never run with vendor-dependent masks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from harness.errors import HarnessError

DROPOUT_STREAM = 2      # the dropout generator is stream 2 of the student seed (1: Theseus's replacement draws)
LEVELS = 1 << 16        # p is rounded to a multiple of 1 / LEVELS


def threshold(p: float) -> int:
    """t = round(p * 65536): an element is dropped when its 16-bit field f (signed) has f + 32768 < t."""
    if not 0.0 <= p <= 1.0:
        raise HarnessError(f"dropout probability must be in [0, 1], got {p}")
    return round(p * LEVELS)


def _fields(shape, generator: torch.Generator) -> torch.Tensor:
    """One signed 16-bit field per element of `shape` (on the CPU), row-major, from `generator` (a CPU
    torch.Generator): ceil(n / 4) int64 draws, four fields each, low field first."""
    n = 1
    for d in shape:
        n *= int(d)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None, generator=generator)
    return words.view(torch.int16)[:n].view(shape)


def drop_mask(shape, p: float, generator: torch.Generator) -> torch.Tensor:
    """Boolean drop mask of `shape` (on the CPU) for dropout probability p, drawn from `generator`: f + 32768 < t
    for each element's field f read as int16 (two's complement)."""
    return _fields(shape, generator) < threshold(p) - LEVELS // 2


def keep_mask(shape, p: float, generator: torch.Generator) -> torch.Tensor:
    """The complement of drop_mask: the elements kept (the same draws)."""
    return _fields(shape, generator) >= threshold(p) - LEVELS // 2


# the integer type of each floating type's width: a dropped element is an AND with all-zero bits
_BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.bfloat16: torch.int16,
         torch.float16: torch.int16}


def keep_bits(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask as words of `dtype`'s width: all ones where True, all zeros where False."""
    return keep.to(_BITS[dtype]).neg_()


def keep_words(shape, p: float, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """keep_bits(keep_mask(shape, p, generator), dtype) from the same draws, without a boolean tensor: a field
    f clamped to [c - 1, c] (c = t - 32768, the least field kept) minus (c - 1) is 1 where kept and 0 where
    dropped, and negated, all ones or zeros; integer clamps are vectorised where comparisons into a boolean are
    not (0.04 against 0.18 ms for 491,520 int16 fields here). Needs 0 < t < 65536 (dropout handles the rest)."""
    c = threshold(p) - LEVELS // 2
    fields = _fields(shape, generator)
    if _BITS[dtype] != torch.int16:
        fields = fields.to(_BITS[dtype])
        return fields.clamp_(c - 1, c).sub_(c - 1).neg_()
    return fields.clamp(c - 1, c).sub_(c - 1).neg_()


def _and(x: torch.Tensor, bits: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """x's bits AND `bits` (broadcast), as a tensor of x's dtype (x itself when `inplace`: only for a tensor
    no one else holds): x where bits are all ones, +0 where zeros."""
    words = x.view(bits.dtype)
    return (words.bitwise_and_(bits) if inplace else words.bitwise_and(bits)).view(x.dtype)


class _ScaleKeep(torch.autograd.Function):
    """x * scale where `bits` are all ones, +0 where they are zeros; its gradient: the incoming gradient
    treated the same way.

    The values and gradients of x.mul(scale).masked_fill_(~keep, 0) (and of torch.where(keep, x * scale, 0))
    bit for bit, signed zeros and non-finite values included, since an AND with all-ones words leaves every bit
    and one with zeros gives +0: on this CPU a bitwise AND is 10-20x faster than a masked fill, which torch
    does not vectorise (docs/performance.md)."""

    @staticmethod
    def forward(ctx, x, bits, scale):
        ctx.save_for_backward(bits)
        ctx.scale = scale
        return _and(x.mul(scale), bits, inplace=True)  # the product is this function's own

    @staticmethod
    def backward(ctx, grad):
        (bits,) = ctx.saved_tensors
        return _and(grad, bits).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, generator: torch.Generator, training: bool = True,
            inplace: bool = False) -> torch.Tensor:
    """x with each element kept (and scaled by 65536 / (65536 - t)) or zeroed by `drop_mask`: the values and
    gradients of torch.where(keep, x * scale, 0) bit for bit (a dropped element is +0), computed as a bitwise
    AND (`_ScaleKeep`) for floating x (tests/training/test_dropout.py)."""
    if not training or p == 0.0:
        return x
    t = threshold(p)
    if t == 0:
        return x
    if t >= LEVELS:
        return x.zero_() if inplace else x * 0.0
    scale = LEVELS / (LEVELS - t)
    if not inplace and x.dtype in _BITS:
        bits = keep_words(x.shape, p, generator, x.dtype)
        if bits.device != x.device:  # a CUDA run draws its masks on the CPU as well: the same masks everywhere
            bits = bits.to(x.device, non_blocking=True)
        return _ScaleKeep.apply(x, bits, scale)
    drop = drop_mask(x.shape, p, generator)
    if drop.device != x.device:
        drop = drop.to(x.device, non_blocking=True)
    # in place (an integer view's AND would hide the change from autograd) or another dtype: a masked fill
    if inplace:
        return x.masked_fill_(drop, 0.0).mul_(scale)
    return x.mul(scale).masked_fill_(drop, 0.0)


class _FillWhereNot(torch.autograd.Function):
    """x where `bits` are all ones, the constant whose bits are `fill` (zeros where `bits` are ones) elsewhere;
    gradient: the incoming one where kept, +0 elsewhere. The values and gradients of
    x.masked_fill(~mask, value) bit for bit, as two bitwise operations (see _ScaleKeep)."""

    @staticmethod
    def forward(ctx, x, bits, fill):
        ctx.save_for_backward(bits)
        return _and(x, bits).view(bits.dtype).bitwise_or_(fill).view(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (bits,) = ctx.saved_tensors
        return _and(grad, bits), None, None


def masked_scores(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """scores.masked_fill(~mask, -inf) for a boolean attention mask (broadcast to scores), bit for bit."""
    if scores.dtype not in _BITS:
        return scores.masked_fill(~mask, float("-inf"))
    bits = keep_bits(mask, scores.dtype)
    fill = torch.tensor(float("-inf"), dtype=scores.dtype).view(bits.dtype).bitwise_and(bits.bitwise_not())
    return _FillWhereNot.apply(scores, bits.to(scores.device), fill.to(scores.device))


_TORCH_SDPA = F.scaled_dot_product_attention


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    """The attention's softmax over keys, as autocast runs it: on the CPU in the scores' dtype (bf16 in a bf16
    run), on CUDA in fp32. `bench --experimental` swaps it for a prototype (harness.bench.prototypes); runs
    never do."""
    return torch.softmax(scores, -1)


def attention(generator: torch.Generator):
    """A drop-in for torch.nn.functional.scaled_dot_product_attention whose attention-probability dropout is
    `dropout` from `generator`: softmax(q k^T * scale + mask) with dropout, times v. Without dropout (eval,
    or p = 0) and for the forms the harness never uses (causal, grouped-query), torch's own SDPA runs."""

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        if dropout_p == 0.0 or is_causal or any(kwargs.values()):
            return _TORCH_SDPA(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                               scale=scale, **kwargs)
        scores = torch.matmul(query, key.transpose(-2, -1)) * (query.shape[-1] ** -0.5 if scale is None else scale)
        if attn_mask is not None:
            scores = masked_scores(scores, attn_mask) if attn_mask.dtype == torch.bool else scores + attn_mask
        return torch.matmul(dropout(_softmax(scores), dropout_p, generator), value)

    return sdpa


class harness_dropout:  # noqa: N801 - used as a context manager, like torch.no_grad
    """Within `with`: torch.nn.functional.dropout and scaled_dot_product_attention's dropout are the harness's,
    drawn from `generator` (Hugging Face layers and nn.Dropout look both up at call time). Reusable: `fit`
    enters one per phase at every step."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator
        self.sdpa = attention(generator)
        self.saved = []

    def dropout(self, input, p=0.5, training=True, inplace=False):
        return dropout(input, p, self.generator, training, inplace)

    def __enter__(self):
        self.saved.append((F.dropout, F.scaled_dot_product_attention))
        F.dropout, F.scaled_dot_product_attention = self.dropout, self.sdpa
        return self

    def __exit__(self, *exc):
        F.dropout, F.scaled_dot_product_attention = self.saved.pop()


# aten ops through which torch draws dropout masks itself (Bernoulli draws, fused dropout kernels)
_TORCH_DROPOUT_OPS = ("bernoulli", "native_dropout", "fused_dropout", "_fused_dropout", "feature_dropout",
                      "alpha_dropout", "feature_alpha_dropout")


class DropoutAudit(TorchDispatchMode):
    """Records the aten ops of a forward that draw dropout through torch's own RNG; `check` refuses them.
    Used on the first training step of each phase: a cheap proof that every dropout of the forward went
    through `harness_dropout` (values are unchanged: the mode only looks at the ops)."""

    def __init__(self):
        super().__init__()
        self.found: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name.startswith(_TORCH_DROPOUT_OPS):
            self.found.add(name)
        return func(*args, **(kwargs or {}))

    def check(self, where: str) -> None:
        if self.found:
            raise HarnessError(f"{where}: the training forward draws dropout through torch's own RNG "
                               f"({', '.join(sorted(self.found))}), whose masks depend on the CPU vendor; the "
                               "harness replaces only torch.nn.functional.dropout and SDPA's dropout_p, so this "
                               "encoder is refused")
