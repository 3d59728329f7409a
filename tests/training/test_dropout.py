"""The harness's dropout: masks from the run's dropout generator by a vendor-independent path (checked against a
committed fixture and against numpy's reference MT19937), the keep share and scale, attention dropout, and that
evaluation and `previous` are untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.errors import HarnessError
from harness.training.dropout import (DROPOUT_STREAM, LEVELS, DropoutAudit, attention, dropout, harness_dropout,
                                      keep_mask, keep_words, masked_scores, threshold)
from harness.training.loop import stream_generator

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dropout_masks.json"


def test_masks_match_the_committed_fixture():
    """The same seed draws these masks on any x86 CPU: the fixture was written on one machine, and the draw
    uses no vendor-dependent code (see the next test), so every machine must reproduce it bit for bit."""
    doc = json.loads(FIXTURE.read_text())
    g = stream_generator(doc["student_seed"], doc["stream"])
    assert doc["stream"] == DROPOUT_STREAM
    for spec in doc["masks"]:
        flat = keep_mask(spec["shape"], spec["p"], g).reshape(-1)
        assert "".join("1" if b else "0" for b in flat[:64].tolist()) == spec["first_64"]
        assert int(flat.sum()) == spec["kept"]
        assert hashlib.sha256(flat.to(torch.uint8).numpy().tobytes()).hexdigest() == spec["sha256"]


def test_masks_are_the_reference_mt19937_stream():
    """An independent implementation of the mask: numpy's legacy MT19937 (init_genrand seeding, plain integer
    code) gives 32-bit words r1, r2, ...; each int64 draw is (r1 << 32) | r2, its 16-bit fields low first; a
    field u (unsigned) is f + 32768 = u XOR 0x8000 for f the same bits read signed."""
    seed, p, n = 7 * 1_000_003 + DROPOUT_STREAM, 0.1, 1001
    words = np.random.RandomState(seed).randint(0, 2 ** 32, size=2 * ((n + 3) // 4), dtype=np.uint64)
    draws = (words[0::2] << np.uint64(32)) | words[1::2]
    fields = np.stack([(draws >> np.uint64(16 * k)) & np.uint64(0xFFFF) for k in range(4)], 1).reshape(-1)[:n]
    expected = (fields ^ np.uint64(0x8000)) >= threshold(p)
    assert np.array_equal(keep_mask((n,), p, stream_generator(7, DROPOUT_STREAM)).numpy(), expected)


@pytest.mark.parametrize("p", [1 / 65536, 0.1, 0.5, 0.9, 65535 / 65536])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64])
def test_keep_words_are_the_keep_mask_as_words(p, dtype):
    """The words a dropout ANDs with are the keep mask's draws (all ones where kept), at the threshold's edges."""
    shape = (3, 1001)
    words = keep_words(shape, p, stream_generator(9, DROPOUT_STREAM), dtype)
    keep = keep_mask(shape, p, stream_generator(9, DROPOUT_STREAM))
    assert words.dtype == {torch.bfloat16: torch.int16, torch.float32: torch.int32, torch.float64: torch.int64}[dtype]
    assert torch.equal(words, torch.where(keep, -1, 0).to(words.dtype))


def test_keep_share_scale_and_rounded_probability():
    g = torch.Generator().manual_seed(0)
    x = torch.ones(400_000)
    y = dropout(x, 0.1, g)
    kept = y != 0
    t = threshold(0.1)
    assert t == 6554 and abs(kept.float().mean().item() - (1 - t / LEVELS)) < 0.003
    assert torch.all(y[kept] == LEVELS / (LEVELS - t))  # the inverse of the keep probability drawn
    assert dropout(x, 0.1, g, training=False) is x and dropout(x, 0.0, g) is x
    assert torch.all(dropout(x, 1.0, g) == 0)
    z = x.clone()
    assert torch.equal(dropout(z, 0.3, torch.Generator().manual_seed(1), inplace=True), z)
    assert torch.equal(z, dropout(x, 0.3, torch.Generator().manual_seed(1)))
    with pytest.raises(HarnessError, match="dropout probability"):
        dropout(x, 1.5, g)


def test_gradient_flows_through_kept_elements_only():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(64, 32, requires_grad=True)
    y = dropout(x, 0.25, g)
    (grad,) = torch.autograd.grad(y.sum(), x)
    keep = y.detach() != 0
    assert torch.equal(grad, torch.where(keep, torch.tensor(LEVELS / (LEVELS - threshold(0.25))), 0.0))


def _with_special_values(x: torch.Tensor) -> torch.Tensor:
    """x with signed zeros, infinities and NaNs spread over it (kept and dropped positions alike)."""
    flat = x.reshape(-1)
    for i, v in enumerate((-0.0, 0.0, float("inf"), float("-inf"), float("nan"))):
        flat[i::97] = v
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_values_and_gradients_are_the_where_formula_bit_for_bit(dtype):
    """The bitwise arithmetic (scale, then AND with the keep words) changes no number of a run: values and
    gradients equal torch.where(keep, x * scale, 0) bit for bit, signed zeros and non-finite values included,
    in fp32, bf16 and fp64."""
    x = _with_special_values((torch.randn(257, 384) * 3).to(dtype))
    scale = LEVELS / (LEVELS - threshold(0.1))
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    keep = keep_mask(x.shape, 0.1, stream_generator(5, DROPOUT_STREAM))
    ya = torch.where(keep, a * scale, 0.0)
    yb = dropout(b, 0.1, stream_generator(5, DROPOUT_STREAM))
    upstream = _with_special_values(torch.randn_like(ya).flip(0))
    ya.backward(upstream)
    yb.backward(upstream)
    bits = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float64: torch.int64}[dtype]
    assert torch.equal(ya.detach().view(bits), yb.detach().view(bits))
    assert torch.equal(a.grad.view(bits), b.grad.view(bits))
    # and the masked fill that an in-place dropout still uses: the same bits
    c = x.clone()
    dropout(c, 0.1, stream_generator(5, DROPOUT_STREAM), inplace=True)
    assert torch.equal(c.view(bits), ya.detach().view(bits))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_masked_scores_are_the_masked_fill_bit_for_bit(dtype):
    """The attention's padding mask as two bitwise operations: values and gradients of
    scores.masked_fill(~mask, -inf), broadcast over heads and queries, bit for bit."""
    scores = _with_special_values((torch.randn(4, 3, 9, 9) * 5).to(dtype))
    mask = torch.rand(4, 1, 1, 9, generator=torch.Generator().manual_seed(2)) < 0.7
    a, b = scores.clone().requires_grad_(), scores.clone().requires_grad_()
    ya, yb = a.masked_fill(~mask, float("-inf")), masked_scores(b, mask)
    upstream = _with_special_values(torch.randn_like(ya).flip(-1))
    ya.backward(upstream)
    yb.backward(upstream)
    bits = torch.int32 if dtype == torch.float32 else torch.int16
    assert torch.equal(ya.detach().view(bits), yb.detach().view(bits))
    assert torch.equal(a.grad.view(bits), b.grad.view(bits))


def test_attention_with_dropout_is_the_written_out_formula_and_without_it_torchs_sdpa():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)[:, None, None, :]
    sdpa = attention(torch.Generator().manual_seed(4))
    assert torch.equal(sdpa(q, k, v, attn_mask=mask), F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    out = sdpa(q, k, v, attn_mask=mask, dropout_p=0.2, scale=0.3)
    probs = torch.softmax((q @ k.transpose(-2, -1) * 0.3).masked_fill(~mask, float("-inf")), -1)
    expected = dropout(probs, 0.2, torch.Generator().manual_seed(4)) @ v
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_harness_dropout_replaces_torchs_inside_and_restores_it_after():
    before = F.dropout, F.scaled_dot_product_attention
    layer = torch.nn.Dropout(0.5)
    x = torch.ones(1000)
    with harness_dropout(torch.Generator().manual_seed(5)):
        inside = layer(x)
    assert (F.dropout, F.scaled_dot_product_attention) == before
    assert torch.equal(inside, dropout(x, 0.5, torch.Generator().manual_seed(5)))
    with harness_dropout(torch.Generator().manual_seed(5)):
        assert torch.equal(layer.eval()(x), x)  # evaluation: no dropout at all


def test_the_audit_refuses_a_forward_that_draws_torchs_own_masks():
    x = torch.ones(100)
    with DropoutAudit() as seen:
        with harness_dropout(torch.Generator().manual_seed(0)):
            torch.nn.Dropout(0.1)(x)
    seen.check("fine")
    with DropoutAudit() as seen:
        with harness_dropout(torch.Generator().manual_seed(0)):
            torch.bernoulli(torch.full((10,), 0.5))  # e.g. a layer with a dropout of its own
    with pytest.raises(HarnessError, match="draws dropout through torch's own RNG"):
        seen.check("phase 'train'")
