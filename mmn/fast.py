"""A fast, eval-only inference path for MMN: :class:`FastMMN` (see :func:`optimise_for_inference`).

:class:`mmn.model.MMN` is the faithful, trainable model whose module names match the authors'
checkpoints. :class:`FastMMN` is built *from* a loaded MMN in eval mode and computes the same
function — logits within 1e-4 in float32; in float64 the two agree to rounding (1e-12), maps
included — with fewer and cheaper passes over memory:

- **channels-last throughout**: activations stay (B, T, V, C) contiguous, so every Linear and
  1×1 convolution is one GEMM on a (B·T·V, C) matrix; no permute/contiguous pairs.
- **folded normalisation**: eval BatchNorm is folded into the convolution/linear before it
  (Motion's depthwise conv, gate, aggregation, downsamplers, fusion). The BatchNorms that
  follow a ``tanh`` (MSM, MTM) become one affine on the four modulation tensors, merged with
  the instance standardisation's 1/σ, and the ``tanh`` itself runs as ``2·sigmoid(2z) − 1``
  with the factors folded into the GEMM before and the affine after (CPU ``tanh`` is about 9×
  slower than ``sigmoid``). (LayerNorm keeps its own affine: PyTorch's fused kernel is faster
  with it than without.)
- **fewer GEMMs, no bias passes**: the grouped temporal conv of the ``h`` branch is folded into
  the ``mapping`` GEMM as three shifted taps (its bias, and the bias of the motion branch, which
  the frame difference cancels, are handled exactly); MSM's Linear and MTM's three temporal taps
  share one GEMM; the four per-head joint mixes are one batched product; residual Linears
  accumulate in place (``addmm_``); GELU runs in place on the GEMM output.
- **one buffer, no concatenation**: the branches are written into slices of one
  (B, T, V, 6C/4) buffer laid out so that the gate's input and the aggregation's input are each
  one contiguous column range (weight columns permuted to match); the gate's second conv emits
  the weight of each 24-channel group directly.
- **instance statistics** (mean and unbiased std over (T, V)) from batched products with a
  ones vector, two-pass, for both branches at once (``torch.var_mean`` over non-last dims is
  far slower on CPU).
- **CPU execution**: batches run a few clips at a time (every op is per clip in eval mode, so
  the working set stays in cache), on single-threaded workers (see :class:`FastMMN`).

The module holds only derived buffers (no parameters, empty ``state_dict``), refuses
``train()`` and is not meant to be saved: keep the :class:`~mmn.model.MMN` (or its checkpoint)
as the source of truth and convert after loading. It is pure torch and follows ``.to()``
(device and dtype); under ``torch.autocast`` it runs a cached copy in the autocast dtype.
"""
from __future__ import annotations

import copy
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmn.model import MAP_NAMES, MMN, MotionModulatedBlock, check_input, sinusoidal_time_code

# Clips per chunk on CPU (2 and 4 measured best on 2 cores, 1 clearly worse; see benchmarks/).
DEFAULT_CPU_CHUNK = 2


def _bn_scale_shift(bn: nn.BatchNorm2d | nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """Eval BatchNorm as y = x·scale + shift (float64)."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - bn.running_mean.double() * scale
    return scale, shift


def _cast(t: Tensor, dtype: torch.dtype) -> Tensor:
    """Folded (float64) values → the model's dtype, contiguous."""
    return t.detach().to(dtype).contiguous()


class _FastBlock(nn.Module):
    """Folded weights of one :class:`MotionModulatedBlock`; forward on (B, T, V, C) channels-last."""

    def __init__(self, blk: MotionModulatedBlock, dtype: torch.dtype) -> None:
        super().__init__()
        c = blk.mapping.in_features
        q, half, heads = c // 4, c // 2, blk.num_heads
        if blk.tconv.kernel_size[0] != 3 or blk.Motion[0].kernel_size[0] != 3:
            raise ValueError("FastMMN supports kernel_size=3 only")
        self.c, self.q, self.heads = c, q, heads
        self.eps1, self.eps2 = blk.norm_1.eps, blk.norm_2.eps
        reg = lambda name, t: self.register_buffer(name, _cast(t, dtype), persistent=False)  # noqa: E731

        reg("ln1_w", blk.norm_1.weight)
        reg("ln1_b", blk.norm_1.bias)
        # mapping, no bias; rows: g (q) | m (2q) | tconv taps t-1, t, t+1 applied to h (3q).
        wm, bm = blk.mapping.weight.double(), blk.mapping.bias.double()
        wg, wh, wmm = wm[:q], wm[q:half], wm[half:]
        bg, bh = bm[:q], bm[q:half]  # the bias of m cancels in the frame difference
        tw = blk.tconv.weight.double()[..., 0]  # (q, q/heads, 3)
        gs = q // heads
        taps = []
        for dt in range(3):
            dense = torch.zeros(q, q, dtype=torch.float64)
            for h in range(heads):
                dense[h * gs:(h + 1) * gs, h * gs:(h + 1) * gs] = tw[h * gs:(h + 1) * gs, :, dt]
            taps.append(dense)
        reg("w_map_t", torch.cat([wg, wmm] + [tp @ wh for tp in taps]).t())  # (C, 6q)
        # temporal branch bias: conv bias + the taps' share of h's bias; at t=0 (t=T-1) the t-1
        # (t+1) tap falls in the zero padding, so its share is taken back there.
        tb = [tp @ bh for tp in taps]
        reg("b_tc", blk.tconv.bias.double() + tb[0] + tb[1] + tb[2])
        reg("b_tc_first", tb[0])
        reg("b_tc_last", tb[2])
        gconv = blk.gconv.double()  # (heads, V, V)
        reg("gconv", gconv)
        # g's bias after the joint mix: bg[k, j] · Σ_u A_k[v, u], laid out (V, heads, gs)
        reg("b_gc", gconv.sum(dim=2).t()[:, :, None] * bg.view(heads, 1, gs).transpose(0, 1))

        # Motion: depthwise (3,1) conv with BN folded (taps w0, w1, w2), then GELU
        s, t = _bn_scale_shift(blk.Motion[1])
        wd = blk.Motion[0].weight.double()[:, 0, :, 0] * s[:, None]  # (2q, 3)
        for dt in range(3):
            reg(f"w_motion{dt}", wd[:, dt])
        reg("b_motion", t)

        # MSM linear and MTM's three temporal taps as one GEMM on the motion features:
        # columns msm | tap t-1 | tap t | tap t+1, each [γ (q), β (q)]
        # tanh(z) = 2·sigmoid(2z) − 1, and CPU sigmoid is ~9× faster than tanh: the GEMM and
        # its biases produce 2z, the forward applies sigmoid, and the affines below absorb 2·−1.
        mtm_conv = blk.MTM[0]
        reg("w_mod_t", 2.0 * torch.cat([blk.MSM.fc.weight.double()] +
                                       [mtm_conv.weight.double()[:, :, dt, 0] for dt in range(3)]).t())
        reg("b_msm", 2.0 * blk.MSM.fc.bias.double())
        reg("b_mtm", 2.0 * mtm_conv.bias.double())
        reg("adj_colsum", blk.MSM.adj.double().sum(dim=0)[:, None])  # (V, 1)
        # post-tanh BatchNorms as affines on the sigmoid outputs s: BN(tanh) = 2·scale·s + shift − scale
        st, tt = _bn_scale_shift(blk.MTM[2])
        ss, ts = _bn_scale_shift(blk.MSM.bn)
        g_scale, b_scale = torch.stack([st[:q], ss[:q]]), torch.stack([st[q:], ss[q:]])  # (2, q): rows t, s
        reg("g_scale", 2.0 * g_scale)
        reg("g_shift", torch.stack([tt[:q], ts[:q]]) - g_scale + 1.0)  # 1 + γ
        reg("b_scale", 2.0 * b_scale)
        reg("b_shift", torch.stack([tt[q:], ts[q:]]) - b_scale)

        # gate: conv1x1 → BN → ReLU → conv1x1 on [x_tcm, x_gcm, M] = buffer[..., 0:C]; the second
        # conv's rows repeated to [a2, a2, a0, a1], matching buffer[..., 2q:] = [M (2q), x_tc, x_gc]
        s, t = _bn_scale_shift(blk.aggregation_gate[1])
        reg("w_gate1_t", (blk.aggregation_gate[0].weight.double()[:, :, 0, 0] * s[:, None]).t())
        reg("b_gate1", t)
        wg2 = blk.aggregation_gate[3].weight.double()[:, :, 0, 0]
        reg("w_gate2_t", torch.cat([wg2[2:3]] * (half // q) + [wg2[0:1], wg2[1:2]]).t())
        self.n_motion_groups = half // q
        # aggregation: conv1x1 → BN → GELU on [x_tc·a0, x_gc·a1, M·a2]; the weight columns are
        # permuted to the buffer's order [M, x_tc, x_gc].
        s, t = _bn_scale_shift(blk.aggregation[1])
        wa = blk.aggregation[0].weight.double()[:, :, 0, 0] * s[:, None]
        reg("w_agg_t", torch.cat([wa[:, half:], wa[:, :q], wa[:, q:half]], dim=1).t())
        reg("b_agg", t)

        reg("w_proj_t", blk.proj.weight.double().t())
        reg("b_proj", blk.proj.bias)
        reg("ln2_w", blk.norm_2.weight)
        reg("ln2_b", blk.norm_2.bias)
        reg("w_fc1_t", blk.mlp.fc1.weight.double().t())
        reg("b_fc1", blk.mlp.fc1.bias)
        reg("w_fc2_t", blk.mlp.fc2.weight.double().t())
        reg("b_fc2", blk.mlp.fc2.bias)

    def forward(self, r: Tensor, maps: dict[str, Tensor] | None = None, inplace: bool = False) -> Tensor:
        """r (B, T, V, C) contiguous → same. ``inplace``: r may be overwritten; otherwise the
        result goes to the thread's scratch tensor ``"r"`` (see :class:`_Scratch`)."""
        b, t, v, c = r.shape
        q, heads = self.q, self.heads
        n = b * t * v
        ws = _SCRATCH.for_tensor(r)
        r = r.view(n, c)
        u = torch.mm(ws.layer_norm(r, self.ln1_w, self.ln1_b, self.eps1), self.w_map_t,
                     out=ws("u", n, 6 * q)).view(b, t, v, 6 * q)
        g, m = u[..., :q], u[..., q:3 * q]
        y0, y1, y2 = u[..., 3 * q:4 * q], u[..., 4 * q:5 * q], u[..., 5 * q:]

        # one buffer, columns [x_tcm, x_gcm | M (2q) | x_tc, x_gc]:
        # gate input = [..., :4q], aggregation input = [..., 2q:]
        buf = ws("buf", b, t, v, 6 * q)
        motion, x_tc, x_gc = buf[..., 2 * q:4 * q], buf[..., 4 * q:5 * q], buf[..., 5 * q:]

        # temporal branch: grouped (3,1) conv with zero padding, as three shifted taps
        torch.add(y1, self.b_tc, out=x_tc)
        x_tc[:, 1:].add_(y0[:, :-1])
        x_tc[:, :-1].add_(y2[:, 1:])
        x_tc[:, 0].sub_(self.b_tc_first)
        x_tc[:, -1].sub_(self.b_tc_last)

        # skeletal branch: the per-head joint mixes as one batched product over heads
        gs = q // heads
        gh = ws("gh", heads, v, b * t, gs)
        gh.copy_(g.reshape(b * t, v, heads, gs).permute(2, 1, 0, 3))
        mixed = torch.bmm(self.gconv, gh.view(heads, v, b * t * gs), out=ws("mixed", heads, v, b * t * gs))
        torch.add(mixed.view(heads, v, b * t, gs).permute(2, 1, 0, 3), self.b_gc, out=x_gc.view(b * t, v, heads, gs))

        # motion: frame difference (last repeated) → depthwise (3,1) conv + BN → GELU
        d = ws("d", b, t, v, 2 * q)
        torch.sub(m[:, 1:], m[:, :-1], out=d[:, :-1])
        d[:, -1].copy_(d[:, -2])
        mo = torch.addcmul(self.b_motion, d, self.w_motion1, out=ws("mo", b, t, v, 2 * q))
        mo[:, 1:].addcmul_(d[:, :-1], self.w_motion0)
        mo[:, :-1].addcmul_(d[:, 1:], self.w_motion2)
        torch.ops.aten.gelu_(mo)
        motion.copy_(mo)

        # MSM (joint-scaled linear) and MTM (temporal conv taps) from one GEMM, then tanh (as sigmoid);
        # qm columns [γt, βt | γs, βs]
        p = torch.mm(mo.view(n, 2 * q), self.w_mod_t, out=ws("p", n, 8 * q)).view(b, t, v, 8 * q)
        qm = ws("qm", b, t, v, 4 * q)
        torch.addcmul(self.b_msm, p[..., :2 * q], self.adj_colsum, out=qm[..., 2 * q:])
        qt = qm[..., :2 * q]
        torch.add(p[..., 4 * q:6 * q], self.b_mtm, out=qt)
        qt[:, 1:].add_(p[:, :-1, :, 2 * q:4 * q])
        qt[:, :-1].add_(p[:, 1:, :, 6 * q:])
        qm4 = qm.sigmoid_().view(b, t * v, 2, 2, q)  # [t|s][γ|β], as sigmoid(2z) (see __init__)

        # modulated = standardised · (1 + γ) + β for [x_tc, x_gc] at once; mean and unbiased std
        # over (T, V) per clip and channel, two-pass, via batched products with a ones vector
        x = buf[..., 4 * q:].reshape(b, t * v, 2 * q)
        ones = torch.full((b, 1, t * v), 1.0 / (t * v), dtype=u.dtype, device=u.device)
        xc = torch.sub(x, torch.bmm(ones, x), out=ws("xc", b, t * v, 2 * q))
        sq = torch.mul(xc, xc, out=ws("sq", b, t * v, 2 * q))
        var = torch.bmm(ones, sq).mul_((t * v) / (t * v - 1))
        inv = (1.0 / (var.sqrt_() + 1e-6)).view(b, 1, 2, q)
        gamma1 = torch.addcmul(self.g_shift * inv, qm4[:, :, :, 0], self.g_scale * inv,
                               out=ws("gamma1", b, t * v, 2, q))  # (1 + γ)/σ
        beta = torch.addcmul(self.b_shift, qm4[:, :, :, 1], self.b_scale, out=ws("beta", b, t * v, 2, q))
        torch.addcmul(beta, xc.view(b, t * v, 2, q), gamma1, out=buf[..., :2 * q].view(b, t * v, 2, q))

        # gate, then the aggregation of the unmodulated branches weighted by it
        hg = torch.addmm(self.b_gate1, buf[..., :4 * q].reshape(n, 4 * q), self.w_gate1_t,
                         out=ws("hg", n, self.w_gate1_t.shape[1])).relu_()
        gate = torch.mm(hg, self.w_gate2_t, out=ws("gate", n, self.w_gate2_t.shape[1])).sigmoid_()  # a2, a2, a0, a1
        weighted = torch.mul(buf[..., 2 * q:].reshape(n, 4, q), gate[:, :, None], out=ws("weighted", n, 4, q))
        agg = torch.ops.aten.gelu_(torch.addmm(self.b_agg, weighted.view(n, 4 * q), self.w_agg_t,
                                               out=ws("agg", n, c)))

        if maps is not None:  # fresh tensors: the scratch is overwritten by the next block
            k = self.n_motion_groups
            g_full = torch.addcmul(self.g_shift, qm4[:, :, :, 0], self.g_scale).view(b, t, v, 2, q) - 1
            b_full = torch.addcmul(self.b_shift, qm4[:, :, :, 1], self.b_scale).view(b, t, v, 2, q)
            maps["msm_gamma"] = g_full[..., 1, :].abs().mean(dim=-1)
            maps["msm_beta"] = b_full[..., 1, :].abs().mean(dim=-1)
            maps["mtm_gamma"] = g_full[..., 0, :].abs().mean(dim=-1)
            maps["mtm_beta"] = b_full[..., 0, :].abs().mean(dim=-1)
            gate4 = gate.view(b, t, v, k + 2)
            maps["gate_temporal"] = gate4[..., k].clone()
            maps["gate_skeletal"] = gate4[..., k + 1].clone()
            maps["gate_motion"] = gate4[..., 0].clone()
            maps["agg_max"] = agg.view(b, t, v, c).amax(dim=-1)

        # residual 1 (proj) and residual 2 (MLP)
        if inplace:
            r = r.addmm_(agg, self.w_proj_t)
        else:
            r = torch.addmm(r, agg, self.w_proj_t, out=ws("r", n, c))
        r.add_(self.b_proj)
        hmid = torch.ops.aten.gelu_(torch.addmm(self.b_fc1, ws.layer_norm(r, self.ln2_w, self.ln2_b, self.eps2),
                                                self.w_fc1_t, out=ws("hmid", n, self.w_fc1_t.shape[1])))
        r.addmm_(hmid, self.w_fc2_t).add_(self.b_fc2)
        return r.view(b, t, v, c)


class _Scratch:
    """Per-thread scratch tensors, reused from call to call on CPU.

    Fresh allocations of a few MB per op make the allocator hand memory back to the OS and
    fault it in again on every forward (and, with several worker threads, contend for it); on
    CPU the block's temporaries therefore live in one flat tensor per name and thread, grown to
    the largest size seen. ``ws(name, *shape)`` is a view of it, valid until the next call with
    the same name on the same thread. Other devices allocate normally (their caching allocators
    already reuse memory).
    """

    def __init__(self, device: torch.device, dtype: torch.dtype, store: dict | None) -> None:
        self.device, self.dtype, self.store = device, dtype, store

    def __call__(self, name: str, *shape: int) -> Tensor:
        if self.store is None:
            return torch.empty(shape, dtype=self.dtype, device=self.device)
        view = self.store.get((name, shape))  # the same view object each time: no view ops
        if view is None:
            numel = 1
            for s in shape:
                numel *= s
            flat = self.store.get(name)
            if flat is None or flat.numel() < numel:
                with torch.inference_mode(False):  # a normal tensor: writable in and out of inference mode
                    flat = self.store[name] = torch.empty(numel, dtype=self.dtype, device=self.device)
                for key in [k for k in self.store if isinstance(k, tuple) and k[0] == name]:
                    del self.store[key]  # views of the old tensor
            with torch.inference_mode(False):
                view = self.store[(name, shape)] = flat[:numel].view(shape)
        return view

    def layer_norm(self, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        """LayerNorm over the last dim of (N, C) ``x`` into scratch ``"ln"``."""
        n, c = x.shape
        if self.store is None:
            return F.layer_norm(x, (c,), weight, bias, eps)
        out = self("ln", n, c)
        torch.ops.aten.native_layer_norm.out(x, [c], weight, bias, eps, out0=out,
                                             out1=self("ln_mean", n, 1), out2=self("ln_rstd", n, 1))
        return out


class _ScratchStore(threading.local):
    def __init__(self) -> None:
        self.stores: dict[torch.dtype, dict[str, Tensor]] = {}

    def for_tensor(self, x: Tensor) -> _Scratch:
        if x.device.type != "cpu":
            return _Scratch(x.device, x.dtype, None)
        return _Scratch(x.device, x.dtype, self.stores.setdefault(x.dtype, {}))


_SCRATCH = _ScratchStore()


class _FastDownsample(nn.Module):
    """(3,1) conv stride 2, replicate padding, BN folded; channels-last in and out."""

    def __init__(self, ds: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        s, t = _bn_scale_shift(ds.bn)
        conv = ds.reduction
        self.register_buffer("weight", _cast(conv.weight.double() * s[:, None, None, None], dtype), persistent=False)
        self.register_buffer("bias", _cast(conv.bias.double() * s + t, dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        xc = F.pad(x.permute(0, 3, 1, 2), (0, 0, 1, 1), mode="replicate")
        return F.conv2d(xc, self.weight, self.bias, stride=(2, 1)).permute(0, 2, 3, 1).contiguous()


class FastMMN(nn.Module):
    """Eval-only MMN with the same ``forward(x, index_t, return_maps=False)`` as :class:`MMN`.

    Build with :meth:`from_model` (or :func:`optimise_for_inference`) from an MMN whose weights
    are final; later changes to that MMN are not seen. Keeps ``cfg`` and ``meta``.
    The forward never records autograd history.

    On CPU the batch runs ``chunk_size`` clips at a time and, with ``workers`` > 1 (default
    ``"auto"``: ``torch.get_num_threads()`` of the calling thread), on that many worker threads
    that each run torch single-threaded: whole chunks go to different workers, and a lone clip
    has its four stages split between them (stage 0, with T frames, is about half the work).
    MMN's ops are small (a clip is ~2.7 GFLOP over ~700 ops), so splitting each op over
    intra-op threads buys little and, whenever another process holds a core, makes every op wait
    for the descheduled thread (a 2-thread forward then takes seconds instead of ~0.1 s); workers
    degrade gracefully instead. ``workers=1`` runs everything in the calling thread with its
    intra-op threads. On CUDA the batch always runs whole, in the calling thread.
    """

    def __init__(self, model: MMN, chunk_size: int = DEFAULT_CPU_CHUNK, workers: int | str = "auto") -> None:
        super().__init__()
        if model.training:
            raise ValueError("FastMMN is built from an MMN in eval mode (call model.eval() first)")
        if chunk_size < 1:
            raise ValueError("chunk_size must be ≥ 1")
        self.cfg = model.cfg
        self.meta = model.meta
        self.chunk_size = chunk_size
        self.workers = workers
        dtype = next(model.parameters()).dtype
        reg = lambda name, t: self.register_buffer(name, _cast(t, dtype), persistent=False)  # noqa: E731
        proj = model.projection
        for i, j in ((0, 0), (1, 2), (2, 4)):
            reg(f"w_emb{i}", proj[j].weight.double()[:, :, 0, 0])
            reg(f"b_emb{i}", proj[j].bias.double())
        reg("stpe_t", model.STPE.double().t())  # (V, C)
        self.blocks = nn.ModuleList(nn.ModuleList(_FastBlock(b, dtype) for b in stage.blocks)
                                    for stage in model.MFM)
        self.downs = nn.ModuleList(_FastDownsample(d, dtype) for d in model.DSs)

        fu = model.fusion
        for i, seq in enumerate((fu.down1, fu.down2, fu.down3)):
            s, t = _bn_scale_shift(seq[1])
            reg(f"w_down{i}", seq[0].weight.double() * s[:, None, None, None])
            reg(f"b_down{i}", seq[0].bias.double() * s + t)
        s, t = _bn_scale_shift(fu.f4_proc[0])
        reg("f4_scale", s)
        reg("f4_shift", t)
        s, t = _bn_scale_shift(fu.gate_conv[1])
        reg("w_fgate1", fu.gate_conv[0].weight.double()[:, :, 0, 0] * s[:, None])
        reg("b_fgate1", fu.gate_conv[0].bias.double() * s + t)
        reg("w_fgate2", fu.gate_conv[3].weight.double()[:, :, 0, 0])
        reg("b_fgate2", fu.gate_conv[3].bias.double())
        reg("w_res", fu.res_conv.weight.double()[:, :, 0, 0])
        reg("b_res", fu.res_conv.bias.double())
        reg("w_head", model.head.weight.double())
        reg("b_head", model.head.bias.double())

    @classmethod
    def from_model(cls, model: MMN, chunk_size: int = DEFAULT_CPU_CHUNK,
                   workers: int | str = "auto") -> FastMMN:
        """Fold ``model`` (eval mode) into a FastMMN on the same device and dtype."""
        device = next(model.parameters()).device
        with torch.no_grad():
            return cls(model, chunk_size, workers).to(device)

    def _low_precision_copy(self, dtype: torch.dtype, device: torch.device) -> FastMMN:
        """A cached copy of this module in ``dtype`` (for autocast)."""
        cache = self.__dict__.pop("_low_precision", {})
        try:
            if (dtype, device) not in cache:
                cache[(dtype, device)] = copy.deepcopy(self).to(device=device, dtype=dtype)
            return cache[(dtype, device)]
        finally:
            self.__dict__["_low_precision"] = cache

    def train(self, mode: bool = True) -> FastMMN:
        if mode:
            raise RuntimeError("FastMMN is inference-only (BatchNorm is folded); train the MMN instead")
        return super().train(False)

    # ------------------------------------------------------------------ forward
    def _num_workers(self, x: Tensor) -> int:
        if x.device.type != "cpu" or threading.current_thread().name.startswith(_POOL_PREFIX):
            return 1
        n = torch.get_num_threads() if self.workers == "auto" else int(self.workers)
        return max(1, n)

    def forward(self, x: Tensor, index_t: Tensor, return_maps: bool = False):
        x = check_input(x, self.cfg)
        index_t = index_t.to(x.device)
        dev = x.device.type
        if torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev) != self.w_head.dtype:
            # under autocast the whole fast path runs in the autocast dtype (a cached copy)
            low = self._low_precision_copy(torch.get_autocast_dtype(dev), x.device)
            with torch.autocast(dev, enabled=False):
                return low(x, index_t, return_maps)
        with torch.no_grad():
            if x.device.type != "cpu":
                return self._forward(x, index_t, return_maps)
            b, n = x.shape[0], self._num_workers(x)
            if n == 1:
                chunk = self.chunk_size
                return _merge([self._forward(x[i:i + chunk], index_t[i:i + chunk], return_maps)
                               for i in range(0, b, chunk)], return_maps)
            # Every op runs in a worker: intra-op threads in the calling thread would wait on
            # each other at every op whenever another process holds a core.
            if b >= n:  # whole clips to different workers
                chunk = min(self.chunk_size, -(-b // n))
                outs = _run_in_pool(n, [(self._forward, x[i:i + chunk], index_t[i:i + chunk], return_maps)
                                        for i in range(0, b, chunk)])
                return outs[0] if len(outs) == 1 else _run_in_pool(n, [(_merge, outs, return_maps)])[0]
            # fewer clips than workers: the stages run side by side (stage i has T/2^i frames, so
            # stage 0 is about half the work and runs alone); each job also does its stage's
            # part of the fusion
            s0 = _run_in_pool(n, [(self._embed, x, index_t)])[0]
            groups = [[0], [1, 2, 3]] if n == 2 else [[0], [1], [2, 3]] if n == 3 else [[0], [1], [2], [3]]
            parts = _run_in_pool(n, [(self._stages, g, s0, return_maps) for g in groups])
            return _run_in_pool(n, [(self._finish, [o for part in parts for o in part], return_maps)])[0]

    def _embed(self, x: Tensor, index_t: Tensor) -> Tensor:
        h = x.permute(0, 2, 3, 1).to(self.w_emb0.dtype)  # (B, T, V, C_in)
        h = F.gelu(F.linear(h, self.w_emb0, self.b_emb0))
        h = F.gelu(F.linear(h, self.w_emb1, self.b_emb1))
        p = F.linear(h, self.w_emb2, self.b_emb2)  # (B, T, V, C)
        te = sinusoidal_time_code(index_t, self.cfg.channels).to(p.dtype)  # (B, T, C)
        return p.addcmul_(te[:, :, None, :], self.stpe_t)

    def _stages(self, idx: list[int], s0: Tensor, return_maps: bool) -> list[tuple[Tensor, list]]:
        """Stages ``idx`` (ascending) from the embedding ``s0``: for each, its input is the
        embedding downsampled i times; returns (the stage's fusion input, its block maps)."""
        out, s, level = [], s0, 0
        for i in idx:
            while level < i:
                s = self.downs[level](s)
                level += 1
            f, maps = s, []
            for j, blk in enumerate(self.blocks[i]):
                bm: dict[str, Tensor] | None = {} if return_maps else None
                f = blk(f, bm, inplace=j > 0)
                if return_maps:
                    maps.append(bm)
            out.append((self._fusion_input(i, f), maps))
        return out

    def _forward(self, x: Tensor, index_t: Tensor, return_maps: bool):
        return self._finish(self._stages(list(range(len(self.blocks))), self._embed(x, index_t), return_maps),
                            return_maps)

    def _fusion_input(self, i: int, f: Tensor) -> Tensor:
        """Fusion §5: f1'..f3' = ReLU(BN(conv (k,1) stride k)), f4' = ReLU(BN(f4)); (B, T/8, V, C)."""
        if i < 3:
            y = F.conv2d(f.permute(0, 3, 1, 2), getattr(self, f"w_down{i}"), getattr(self, f"b_down{i}"),
                         stride=(2 ** (3 - i), 1))
            return torch.relu(y.permute(0, 2, 3, 1))
        return torch.relu(torch.addcmul(self.f4_shift, f, self.f4_scale))

    def _finish(self, outs: list[tuple[Tensor, list]], return_maps: bool):
        """Fusion gate over the four scales, mean over (T, V), head."""
        scales = [f for f, _ in outs]
        c = scales[3].shape[-1]
        cat = torch.cat(scales, dim=-1)  # (B, T/8, V, 4C)
        w = torch.softmax(F.linear(torch.relu(F.linear(cat, self.w_fgate1, self.b_fgate1)),
                                   self.w_fgate2, self.b_fgate2), dim=-1)  # (B, T/8, V, 4)
        fused = torch.matmul(w.unsqueeze(-2), cat.view(*cat.shape[:3], 4, c)).squeeze(-2)  # Σ_i w_i f_i'
        fused = fused + F.linear(scales[3], self.w_res, self.b_res)
        logits = F.linear(fused.mean(dim=(1, 2)), self.w_head, self.b_head)
        if not return_maps:
            return logits
        return logits, [m for _, stage_maps in outs for m in stage_maps]


# ---------------------------------------------------------------------------- CPU workers
_POOL_PREFIX = "mmn-fast-worker"
_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads
    os.register_at_fork(after_in_child=_POOLS.clear)


def _pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``n`` threads, each running torch with one intra-op thread.

    ``torch.set_num_threads(1)`` in a worker sets that thread's OpenMP/MKL thread count (and,
    briefly, torch's process-wide default, restored here once every worker has initialised).
    """
    with _POOL_LOCK:
        pool = _POOLS.get(n)
        if pool is None:
            caller_threads = torch.get_num_threads()
            pool = ThreadPoolExecutor(n, thread_name_prefix=_POOL_PREFIX)
            barrier = threading.Barrier(n)

            def init() -> None:
                torch.set_num_threads(1)
                torch.ones(1 << 16).add_(1).sum()  # initialise this thread's parallel backend at 1
                barrier.wait()  # one init per thread: all n threads exist

            for f in [pool.submit(init) for _ in range(n)]:
                f.result()
            torch.set_num_threads(caller_threads)
            _POOLS[n] = pool
        return pool


def _run_in_pool(n: int, jobs: list[tuple]) -> list:
    """Run ``fn(*args)`` for each ``(fn, *args)`` in ``jobs`` on ``n`` workers, in the caller's
    grad / inference mode; results in order."""
    inference = torch.is_inference_mode_enabled()

    def call(job):
        fn, *args = job
        with torch.inference_mode(inference), torch.no_grad():
            return fn(*args)

    return list(_pool(n).map(call, jobs))


def _merge(outs: list, return_maps: bool):
    """Concatenate the per-chunk outputs of :meth:`FastMMN._forward` along the batch."""
    if len(outs) == 1:
        return outs[0]
    if not return_maps:
        return torch.cat(outs)
    logits = torch.cat([o[0] for o in outs])
    maps = [{name: torch.cat([o[1][blk][name] for o in outs]) for name in MAP_NAMES}
            for blk in range(len(outs[0][1]))]
    return logits, maps


def optimise_for_inference(model: MMN, chunk_size: int = DEFAULT_CPU_CHUNK,
                           workers: int | str = "auto") -> FastMMN:
    """The fast eval-only equivalent of ``model`` (which must be in eval mode)."""
    return FastMMN.from_model(model, chunk_size, workers)
