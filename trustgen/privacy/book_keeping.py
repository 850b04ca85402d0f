"""Book-keeping per-example clipping: one backward pass, per-example norms from what it already has.

A non-private step runs one backward that computes, for every layer, the gradient of the loss
with respect to the layer's output (``g``) and from it, and the layer's saved input (``a``), the
weight gradient ``g^T a``. Per-example clipping needs ``min(1, C / ||G_i||)`` for each example's
whole gradient ``G_i`` first, and then ``sum_i c_i G_i``. Book-keeping (Bu, Wang, Zha and
Karypis, "Differentially private optimization on large model at small cost", ICML 2023) gets
both from the same ``a`` and ``g``:

1. one backward asks autograd for the gradients of the layers' *outputs* only
   (``torch.autograd.grad(loss, outputs)``): autograd then skips every weight gradient, so the
   pass costs what a non-private backward costs less its weight products;
2. each layer's per-example squared norm comes from ``a`` and ``g`` (a linear layer on one row
   per example: ``||a_i||^2 ||g_i||^2``, no product at all; several rows: the ghost norm
   ``<a_i a_i^T, g_i g_i^T>`` or the per-example gradient, whichever costs fewer operations;
   a convolution: the ghost norm with the patches' Gram matrix taken from the input's pixel
   Gram matrix (nothing unfolded), or the per-example gradient as one grouped convolution,
   chosen from the layer's shapes; a GroupNorm: its per-example gradient, one number per
   channel);
3. the clipped sum is the weight product of a non-private step with ``g`` reweighted:
   ``sum_i c_i g_i^T a_i = (c * g)^T a``, one matrix product (or the per-example gradients
   already made in step 2, summed with weights).

So nothing is computed twice, unlike ghost clipping (a second backward) or Opacus hooks (the
non-private weight gradients and then every per-example gradient). Supported layers:
``nn.Linear``, ``nn.Conv2d`` (numeric zero padding, groups 1) and ``nn.GroupNorm``. A module with trainable
parameters anywhere else is refused (:func:`unsupported_layers`), because autograd would never
be asked for their gradients and they would silently not train. Every forward through a layer
while gradients are on is recorded, and one :meth:`BookKeeping.per_example` consumes the records; the rows of a
layer's batch are example-major, ``rows_per_example`` consecutive rows per example (an example's
several noise draws or its real/fake pair), and they are summed into one example's gradient
before its norm is taken, exactly like a sequence axis.

tests/privacy/test_dp_sgd.py checks the clipped sum against a slow per-example loop for every
family, on tables and images, with several rows per example; tests/privacy/test_book_keeping.py
drives every branch of every layer rule against the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trustgen.errors import ConfigError

SUPPORTED_LAYERS = (nn.Linear, nn.Conv2d, nn.GroupNorm)

#: A convolution's per-example gradients are kept for the weighted sum while they take at most
#: this many numbers (about 256 MB in float32); above it they are made in chunks of examples and
#: the sum is recomputed as one ordinary weight gradient of the reweighted output gradients,
#: which costs time but no memory.
KEEP_PER_EXAMPLE_LIMIT = 64 * 2**20


#: The ghost norm of a convolution takes its examples in chunks whose pixel Gram matrices hold at
#: most this many numbers (512 KB): they then stay in a core's cache through the offset sums and
#: products, 2.5-3x faster than one pass over the batch on 8x8 inputs (measured, batch 256).
GHOST_CHUNK_NUMBERS = 2**17
#: Examples per grouped convolution when a convolution's per-example gradients are made.
PER_EXAMPLE_CHUNK = 128


def unsupported_layers(module: nn.Module) -> list[str]:
    """Why book-keeping cannot clip ``module`` (empty: it can): the sub-modules that own
    trainable parameters and are not a supported layer, or a supported layer configured in a way
    the per-example formulas here do not cover."""
    issues = []
    owner: dict[int, str] = {}
    for name, layer in module.named_modules():
        if not any(p.requires_grad for p in layer.parameters(recurse=False)):
            continue
        label = name or type(layer).__name__
        for p in layer.parameters(recurse=False):
            # A parameter in two layers (tied weights) has one per-example gradient, the sum of
            # both layers' parts; adding their squared norms instead would under-clip it.
            if p.requires_grad and owner.setdefault(id(p), label) != label:
                issues.append(f"{label} shares a parameter with {owner[id(p)]} (tied weights)")
        if type(layer) not in SUPPORTED_LAYERS:
            issues.append(f"{label} ({type(layer).__name__}) is not a layer book-keeping clipping supports")
        elif isinstance(layer, nn.Conv2d) and (layer.padding_mode != "zeros" or layer.groups != 1
                                               or isinstance(layer.padding, str)):  # "same"/"valid"
            issues.append(f"{label}: a Conv2d with padding {layer.padding!r} ({layer.padding_mode}) and groups "
                          f"{layer.groups} (book-keeping supports numeric zero padding and groups 1)")
    return issues


@dataclass
class _Record:
    """One forward through a layer: its input (detached) and its output (in the graph)."""
    layer: nn.Module
    x: torch.Tensor
    out: torch.Tensor
    version: int
    saved: tuple = ()  # what the layer's rule reuses from autograd's own record (GroupNorm: mean, rstd)


class BookKeeping:
    """Records forwards through ``module``'s layers and turns one per-example loss into clipped sums.

    Args:
        module: the private module; every trainable parameter must sit in a supported layer.
        rows_per_example: consecutive rows of each layer's batch that form one example.
    """

    def __init__(self, module: nn.Module, rows_per_example: int = 1) -> None:
        issues = unsupported_layers(module)
        if issues:
            raise ConfigError("book-keeping clipping cannot clip this module: " + "; ".join(issues)
                              + " (use clipping 'hooks')")
        self.rows = int(rows_per_example)
        self.enabled = True
        self.records: list[_Record] = []
        self.layers = [m for m in module.modules()
                       if isinstance(m, SUPPORTED_LAYERS) and any(p.requires_grad for p in m.parameters(recurse=False))]
        self.handles = [layer.register_forward_hook(self._record) for layer in self.layers]

    def _record(self, layer: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        if self.enabled and torch.is_grad_enabled() and out.requires_grad:
            self.records.append(_Record(layer, inputs[0].detach(), out, out._version, _saved_statistics(layer, out)))

    def clear(self) -> None:
        self.records = []

    def per_example(self, loss_per_example: torch.Tensor, params: list[nn.Parameter]):
        """``(squared norms [B, len(params)], summer)``: each example's squared gradient norm per
        parameter, and ``summer(coefs)``, which sets ``p.grad = sum_i coefs[j][i] * G_i`` for
        parameter ``j`` (``coefs``: one ``[B]`` tensor per parameter). Consumes the records."""
        b = loss_per_example.shape[0]
        records, self.records = self.records, []
        for r in records:
            if r.out._version != r.version:
                raise ConfigError(f"the output of {type(r.layer).__name__} was modified in place after its forward; "
                                  "book-keeping clipping needs it unchanged (use clipping 'hooks')")
        if not records or not loss_per_example.requires_grad:  # no recorded layer reaches the loss
            grads = [None] * len(records)
        else:
            grads = torch.autograd.grad(loss_per_example.sum(), [r.out for r in records], allow_unused=True)
        by_layer: dict[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        for r, g in zip(records, grads):
            if g is None:  # this forward did not reach the loss: its gradient is zero
                continue
            if r.x.shape[0] != b * self.rows:
                raise ConfigError(f"a {type(r.layer).__name__} ran on a batch of {r.x.shape[0]} rows; this step's "
                                  f"{b} examples of {self.rows} row(s) each make {b * self.rows}")
            by_layer.setdefault(r.layer, []).append((r.x, g, *r.saved))
        index = {id(p): j for j, p in enumerate(params)}
        columns: list[torch.Tensor | None] = [None] * len(params)  # each parameter's squared norms
        finishers: list[tuple[int, Callable[[torch.Tensor], torch.Tensor]]] = []
        for layer, calls in by_layer.items():
            parts = _LAYER_RULES[type(layer)](layer, calls, b, self.rows)
            for p, (norm2, total) in parts.items():
                if p.requires_grad:  # one layer per parameter (tied weights are refused)
                    columns[index[id(p)]] = norm2.float()
                    finishers.append((index[id(p)], total))
        # One stack, not one indexed add per parameter (each a separate small operation).
        zeros = torch.zeros(b, dtype=torch.float32, device=loss_per_example.device)
        sq = (torch.stack([zeros if col is None else col for col in columns], 1) if columns
              else torch.zeros(b, 0, device=zeros.device))

        def summer(coefs: list[torch.Tensor]) -> None:
            sums: dict[int, torch.Tensor] = {}
            for j, total in finishers:
                part = total(coefs[j]).to(params[j].dtype).view_as(params[j])
                sums[j] = part if j not in sums else sums[j] + part
            for j, p in enumerate(params):
                p.grad = sums[j] if j in sums else torch.zeros_like(p)

        return sq, summer

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
        self.records = []


def _examples(t: torch.Tensor, b: int, rows: int) -> torch.Tensor:
    """``[B * rows, *rest]`` -> ``[B, rows, *rest]`` (rows are example-major)."""
    return t.reshape(b, rows, *t.shape[1:])


def _example_sums(t: torch.Tensor, b: int, rows: int) -> torch.Tensor:
    """``[B * rows, *rest]`` -> ``[B, *rest]``, each example's rows summed (with one row, ``t``
    itself: a sum over an axis of length one is a slow copy, 4 ms on a conv layer's per-example
    gradients, measured)."""
    return t if rows == 1 else _examples(t, b, rows).sum(1)


def _summed(parts) -> torch.Tensor:
    """The sum of the tensors ``parts`` (one layer's calls) without a copy for a single one."""
    total = None
    for part in parts:
        total = part if total is None else total + part
    return total


def _linear(layer: nn.Linear, calls, b: int, rows: int) -> dict:
    # Every call and every row of one example joins one sequence axis: G_i = sum_t g_it a_it^T.
    a = _joined([x.reshape(b, -1, x.shape[-1]) for x, _ in calls], 1).to(calls[0][1].dtype)
    g = _joined([gr.reshape(b, -1, gr.shape[-1]) for _, gr in calls], 1)
    t, d, p = a.shape[1], a.shape[2], g.shape[2]
    out = {}
    if t == 1:
        a1, g1 = a[:, 0], g[:, 0]
        norm2 = a1.square().sum(1) * g1.square().sum(1)
        out[layer.weight] = (norm2, lambda c: (g1 * c[:, None].to(g1)).T @ a1)
    elif t * (d + p) <= d * p:  # ghost norm: two [B, T, T] Gram matrices
        norm2 = (torch.bmm(a, a.transpose(1, 2)) * torch.bmm(g, g.transpose(1, 2))).sum((1, 2))
        out[layer.weight] = (norm2, lambda c: (g * c[:, None, None].to(g)).reshape(-1, p).T @ a.reshape(-1, d))
    else:  # per-example gradients are the cheaper way to the norm, and then to the sum
        per = torch.bmm(g.transpose(1, 2), a)  # [B, p, d]
        out[layer.weight] = (torch.linalg.vector_norm(per, dim=(1, 2)).square(),
                             lambda c: torch.einsum("b,bpd->pd", c.to(per), per))
    if layer.bias is not None:
        gb = g[:, 0] if t == 1 else g.sum(1)
        out[layer.bias] = (gb.square().sum(1), lambda c: c.to(gb) @ gb)
    return out


def _positions(t: torch.Tensor, b: int, rows: int) -> torch.Tensor:
    """``[B * rows, F, L]`` -> ``[B, F, rows * L]``: an example's rows join its position axis."""
    if rows == 1:
        return t
    n, f, L = t.shape
    return t.reshape(b, rows, f, L).transpose(1, 2).reshape(b, f, rows * L)


def _per_example_conv(layer: nn.Conv2d, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Every row's own weight gradient, ``[N, p, C, kh, kw]``: one convolution-weight gradient
    with the batch folded into groups (faster on CPU than a batched product of unfolded patches).

    On CPU that grouped gradient is fast only for blocks of 8 channels: with fewer output
    channels it loops over the examples (measured at 8x8-28x28, 1-64 input channels: 3 output
    channels took 2-4x as long as 8), and input channels off a multiple of 8 cost 10-50% more
    (6-33 input channels at 8x8 and 16x16). So one output channel is done as the correlation of
    each example's input with its own output gradient, a depthwise convolution with the examples
    as channels (4-8x faster); 2-7 output channels are padded with zero channels to 8, and 6 or
    more input channels to a multiple of 8 (1-5 are faster as they are); the gradients of the
    padding are dropped."""
    n, c = x.shape[:2]
    p = g.shape[1]
    kh, kw = layer.kernel_size
    if p == 1:
        # dW_i[c, u, v] = sum_t g_i[t] x_i[c, t * stride + (u, v) * dilation - padding]: the
        # stride and the dilation trade places.
        per = F.conv2d(x.transpose(0, 1), g, None, layer.dilation, layer.padding, layer.stride, groups=n)
        return per[:, :, :kh, :kw].transpose(0, 1).unsqueeze(1)
    q = 8 if p < 8 else p
    if q != p:
        g = F.pad(g, (0, 0, 0, 0, 0, q - p))
    cq = c if c % 8 == 0 or c < 6 else -(-c // 8) * 8
    if cq != c:
        x = F.pad(x, (0, 0, 0, 0, 0, cq - c))
    per = torch.nn.grad.conv2d_weight(x.reshape(1, n * cq, *x.shape[2:]), (n * q, cq, kh, kw),
                                      g.reshape(1, n * q, *g.shape[2:]), layer.stride, layer.padding,
                                      layer.dilation, groups=n)
    return per.view(n, q, cq, kh, kw)[:, :p, :c]


def _conv_ghost_norms(layer: nn.Conv2d, calls, b: int, rows: int) -> torch.Tensor:
    """``||G_i||^2 = <cols_i^T cols_i, g_i^T g_i>`` without unfolding: the patches' Gram matrix
    is the input's own Gram matrix ``A = X^T X`` (every pair of pixels, one batched product)
    summed along each kernel offset, ``sum_o A[t + o, s + o]``, where a pixel outside the
    image (zero padding) contributes nothing. A is laid out with the examples last, so that
    every offset's slice is a run of long contiguous copies (with the examples first the slices
    cost 30x more, measured). The calls and rows of an example share an axis S. Examples are
    taken in chunks so that A stays under ``GHOST_CHUNK_NUMBERS`` numbers.

    The offsets are separable: summing the kh kw offsets of both axes at once moves
    ``kh kw (OH OW)^2`` numbers per example; one axis and then the other moves
    ``kw (H OW)^2 + kh (OH OW)^2`` (or the same with the axes swapped), 6 passes instead of 9 for
    a 3x3 kernel at stride 1. Whichever moves the fewest numbers is used."""
    (ph, pw), (kh, kw), (dh, dw), (sh, sw) = layer.padding, layer.kernel_size, layer.dilation, layer.stride
    c, hgt, wid = calls[0][0].shape[1:]
    p, oh, ow = calls[0][1].shape[1:]
    s = len(calls) * rows
    x = _joined([x.reshape(b, rows, c, hgt * wid) for x, _ in calls], 1)  # [B, S, C, H*W]
    g = _joined([gr.reshape(b, rows, p, oh * ow) for _, gr in calls], 1)
    ys = [o for o in (_valid(oy * dh - ph, sh, oh, hgt) for oy in range(kh)) if o[0].stop > o[0].start]
    xs = [o for o in (_valid(ox * dw - pw, sw, ow, wid) for ox in range(kw)) if o[0].stop > o[0].start]
    chunk = max(1, GHOST_CHUNK_NUMBERS // (s * hgt * wid) ** 2)
    every = slice(None)

    def along(axis: int, offsets) -> list:  # (output index, input index) of each offset along one axis
        def at(sl):
            idx = [every] * 7
            idx[axis] = idx[axis + 3] = sl
            return tuple(idx)
        return [(at(t), at(i)) for t, i in offsets]

    both = [((every, ty, tx, every, ty, tx), (every, iy, ix, every, iy, ix)) for ty, iy in ys for tx, ix in xs]
    cost_both = len(both) * (oh * ow) ** 2
    cost_x_first = len(xs) * (hgt * ow) ** 2 + len(ys) * (oh * ow) ** 2
    cost_y_first = len(ys) * (oh * wid) ** 2 + len(xs) * (oh * ow) ** 2
    if cost_both <= min(cost_x_first, cost_y_first):
        stages = [(both, (oh, ow))]
    elif cost_x_first <= cost_y_first:
        stages = [(along(2, xs), (hgt, ow)), (along(1, ys), (oh, ow))]
    else:
        stages = [(along(1, ys), (oh, wid)), (along(2, xs), (oh, ow))]
    norms = []
    for i in range(0, b, chunk):
        xi = x[i:i + chunk].transpose(1, 2).reshape(-1, c, s * hgt * wid)  # [n, C, S*H*W]
        n = xi.shape[0]
        gram_x = torch.bmm(xi.transpose(1, 2), xi).permute(1, 2, 0).contiguous().view(s, hgt, wid, s, hgt, wid, n)
        for parts, (h_out, w_out) in stages:
            gram_x = _offset_sums(gram_x, parts, (s, h_out, w_out, s, h_out, w_out, n))
        gi = g[i:i + chunk].transpose(1, 2).reshape(n, p, s * oh * ow)
        gram_g = torch.bmm(gi.transpose(1, 2), gi)
        norms.append((gram_x.view(s * oh * ow, s * oh * ow, n) * gram_g.permute(1, 2, 0)).sum((0, 1)))
    return torch.cat(norms)


def _offset_sums(a: torch.Tensor, parts, shape: tuple) -> torch.Tensor:
    """``out[target] += a[source]`` for every ``(target, source)`` index pair of ``parts``, into a
    new tensor of ``shape``. A part whose target is the whole output (the centre offset at stride
    1 with "same" padding) starts the sum as a copy: no zero fill and one pass fewer."""
    def whole(target):
        return all(sl == slice(None) or (sl.start, sl.stop) == (0, size) for sl, size in zip(target, shape))

    first = next((part for part in parts if whole(part[0])), None)
    if first is None:
        out = a.new_zeros(shape)
    else:
        out = a[first[1]].clone(memory_format=torch.contiguous_format)
    for part in parts:
        if part is not first:
            out[part[0]].add_(a[part[1]])
    return out


def _valid(shift: int, stride: int, n_out: int, n_in: int) -> tuple[slice, slice]:
    """For one kernel offset along one axis: the output positions whose input pixel
    ``t * stride + shift`` lies inside the image, and those pixels, as two slices."""
    lo = 0
    while lo < n_out and lo * stride + shift < 0:
        lo += 1
    hi = n_out
    while hi > lo and (hi - 1) * stride + shift > n_in - 1:
        hi -= 1
    if hi <= lo:
        return slice(0, 0), slice(0, 0)
    return slice(lo, hi), slice(lo * stride + shift, (hi - 1) * stride + shift + 1, stride)


def _conv2d(layer: nn.Conv2d, calls, b: int, rows: int) -> dict:
    # A convolution is a linear layer on its input patches (K = C kh kw numbers at each of T
    # positions; T counts every row and call of an example): the same choice as for a linear
    # layer between the ghost norm (two [B, T, T] Gram matrices) and per-example gradients.
    if tuple(layer.kernel_size) == (1, 1) and tuple(layer.stride) == (1, 1) and tuple(layer.padding) == (0, 0):
        # A 1x1 convolution is a linear layer on every pixel: the linear rule (a batched product
        # per example) took half the time of a grouped convolution (64 -> 32 channels at 8x8).
        return _linear(layer, [(x.flatten(2).transpose(1, 2), gr.flatten(2).transpose(1, 2)) for x, gr in calls],
                       b, rows)
    w = layer.weight
    dtype = calls[0][1].dtype
    calls = [(x.to(dtype), gr) for x, gr in calls]
    p, k = w.shape[0], w[0].numel()
    t = sum(gr[0].numel() // p for _, gr in calls) * rows
    out = {}

    def reweighted(c):  # sum_i c_i G_i: an ordinary weight gradient of the reweighted output gradients
        cr = c.repeat_interleave(rows).to(dtype).view(-1, 1, 1, 1)
        return sum(torch.nn.grad.conv2d_weight(x, w.shape, gr * cr, layer.stride, layer.padding, layer.dilation,
                                               layer.groups) for x, gr in calls)

    same_shape = len({tuple(x.shape) for x, _ in calls}) == 1
    hw = calls[0][0][0, 0].numel()
    s_rows = rows * len(calls)
    # Chosen from the shapes alone (so that a resumed run makes the same choices), by a rule
    # fitted on CPU to 16 layer shapes of the image models (benchmarks/README.md): the ghost
    # norm's time follows the (S H W)^2 pixel pairs it moves per example; per-example gradients
    # (grouped convolutions over chunks of examples) follow their T p K products and are fast
    # only at stride 1 (strided or on small images they were 5-300x slower).
    per_example_fast = tuple(layer.stride) == (1, 1) and t * p * k < 150 * (s_rows * hw) ** 2
    if same_shape and not per_example_fast:
        norm2 = _conv_ghost_norms(layer, calls, b, rows)
        out[w] = (norm2, reweighted)
    else:
        # In chunks of at most PER_EXAMPLE_CHUNK examples: the grouped convolution over a whole
        # batch of 256 ran 5x slower than over chunks of 64 (measured, 8x8 inputs); with freed
        # memory kept (runtime.keep_freed_memory) chunks of 128 were as fast as 64 or faster at
        # 8x8, 16x16 and 28x28 inputs, and 1-2% faster in whole image-model steps.
        keep = b * p * k <= KEEP_PER_EXAMPLE_LIMIT
        chunk = min(PER_EXAMPLE_CHUNK, b if keep else max(1, KEEP_PER_EXAMPLE_LIMIT // (p * k)))
        pieces, norms = [], []
        for i in range(0, b, chunk):
            rs = slice(i * rows, (i + chunk) * rows)
            per = _summed(_example_sums(_per_example_conv(layer, x[rs], gr[rs]), -1, rows) for x, gr in calls)
            norms.append(torch.linalg.vector_norm(per, dim=(1, 2, 3, 4)).square())
            if keep:
                pieces.append((i, per))
        norm2 = torch.cat(norms)
        if keep:
            out[w] = (norm2, lambda c: sum(torch.einsum("b,b...->...", c[i:i + len(per)].to(per), per)
                                           for i, per in pieces))
        else:
            out[w] = (norm2, reweighted)
    if layer.bias is not None:
        gb = _summed(_example_sums(gr.flatten(2).sum(2), b, rows) for _, gr in calls)
        out[layer.bias] = (gb.square().sum(1), lambda c: c.to(gb) @ gb)
    return out


def _joined(parts: list[torch.Tensor], dim: int) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim)


def _saved_statistics(layer: nn.Module, out: torch.Tensor) -> tuple:
    """A GroupNorm's per-row, per-group mean and 1/std, ``([N, G], [N, G])``, as autograd saved
    them for its own backward (taken now: the backward frees them), or ``()``. Detached: as
    saved they are outputs of the node and in the graph, and arithmetic on them would carry the
    step's graph into every parameter's gradient (through the clipping coefficients)."""
    fn = out.grad_fn
    if isinstance(layer, nn.GroupNorm) and type(fn).__name__ == "NativeGroupNormBackward0":
        return fn._saved_result1.detach(), fn._saved_result2.detach()
    return ()


def _group_norm(layer: nn.GroupNorm, calls, b: int, rows: int) -> dict:
    # Per example and channel: d/dweight = sum over positions of g * xhat, d/dbias = sum of g.
    # With xhat = (x - mean) * rstd per group, the first is rstd * (sum g x - mean * sum g): the
    # formula of autograd's own GroupNorm backward, with the statistics it saved, so nothing is
    # normalised again (2-3x faster than a second group_norm and a product, measured at 8x8).
    # The subtraction cancels where a group's mean is far from zero: in float32 at least (in
    # bfloat16 it lost 2 digits at a mean of 5 standard deviations).
    groups = layer.num_groups
    weights, biases = [], []
    for x, g, *saved in calls:
        n, ch = g.shape[:2]
        work = torch.promote_types(g.dtype, torch.float32)
        g = g.reshape(n, ch, -1).to(work)
        gb = g.sum(2)
        biases.append(gb)
        if layer.weight is not None:
            x = x.to(work).reshape(n, ch, -1)
            mean, rstd = saved if saved else _group_statistics(x, groups, layer.eps)
            gx = torch.bmm(x.reshape(n * ch, 1, -1), g.reshape(n * ch, -1, 1)).view(n, groups, -1)
            mean, rstd = mean.to(work).view(n, groups, 1), rstd.to(work).view(n, groups, 1)
            weights.append(((gx - mean * gb.view(n, groups, -1)) * rstd).view(n, ch))
    out = {}
    if layer.weight is not None:
        gw = _example_sums(_summed(weights), b, rows)
        out[layer.weight] = (gw.square().sum(1), lambda c: c.to(gw) @ gw)
    if layer.bias is not None:
        gb = _example_sums(_summed(biases), b, rows)
        out[layer.bias] = (gb.square().sum(1), lambda c: c.to(gb) @ gb)
    return out


def _group_statistics(x: torch.Tensor, groups: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, rstd)`` per row and group of ``x`` ``[N, C, L]``, as GroupNorm computes them
    (for a forward whose statistics autograd did not save where we could read them)."""
    var, mean = torch.var_mean(x.reshape(x.shape[0], groups, -1), dim=2, unbiased=False)
    return mean, (var + eps).rsqrt()


_LAYER_RULES = {nn.Linear: _linear, nn.Conv2d: _conv2d, nn.GroupNorm: _group_norm}

__all__ = ["BookKeeping", "GHOST_CHUNK_NUMBERS", "KEEP_PER_EXAMPLE_LIMIT", "PER_EXAMPLE_CHUNK", "SUPPORTED_LAYERS",
           "unsupported_layers"]
