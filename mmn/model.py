"""MMN, the Motion-guided Modulation Network (Gu et al., ACM MM 2025), as a plain ``nn.Module``.

The computation follows the reference (``docs/mmn-computation.md`` §2–6) including the places
where the authors' released code differs from the paper, because the released checkpoints
were trained with that code. Module and parameter names match the released state dicts
(``STPE``, ``projection``, ``MFM.{s}.blocks.{b}``, ``DSs.{i}``, ``fusion``, ``head``), so a
released checkpoint loads with no key mapping.

Shapes: B batch, C channels, T frames, V joints, K classes. The model reads joints in the
body-part order MMN was trained with (see :mod:`mmn.preprocess`); it knows nothing about
joint names.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from core.layouts import IMIGUE_22, MA52_44
from core.taxonomy import IMIGUE, MA52

# The names of the per-block modulation maps ``forward(..., return_maps=True)`` returns.
MAP_NAMES = ("msm_gamma", "msm_beta", "mtm_gamma", "mtm_beta",
             "gate_temporal", "gate_skeletal", "gate_motion", "agg_max")


@dataclass(frozen=True)
class MMNConfig:
    """Hyper-parameters of one MMN. The defaults are the released MA-52 configuration."""

    num_joints: int = MA52_44.num_joints
    num_classes: int = MA52.num_classes
    in_channels: int = 2
    depths: tuple[int, ...] = (3, 3, 3, 3)
    channels: int = 96
    num_heads: int = 4
    kernel_size: int = 3
    mlp_ratio: int = 2
    head_drop: float = 0.1
    drop_path: float = 0.3
    proj_drop: float = 0.0
    fusion_drop: float = 0.1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["depths"] = list(self.depths)
        return d


def sinusoidal_time_code(index_t: Tensor, channels: int) -> Tensor:
    """Continuous time code of each sampled frame.

    ``index_t`` (B, T) holds sample positions in [-1, 1); returns (B, T, channels) with
    ``sin(index_t · f_j)`` at even channel ``j`` and ``cos`` at ``j + 1``, where
    ``f_j = exp(-j · ln(10000) / channels)``.
    """
    j = torch.arange(0, channels, 2, device=index_t.device, dtype=torch.float32)
    freq = torch.exp(-j * (math.log(10000.0) / channels))
    angle = index_t.float().unsqueeze(-1) * freq  # (B, T, C/2)
    te = torch.stack((torch.sin(angle), torch.cos(angle)), dim=-1)  # (B, T, C/2, 2)
    return te.flatten(2)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SkeletalModulation(nn.Module):
    """MSM: motion (B, T, V, Cm) channels-last → (γ_s, β_s), each (B, Cm/2, T, V).

    Released-code order: joint ``w`` is scaled by the column sum of ``adj`` (an einsum, not a
    matrix product), then Linear, tanh, BatchNorm.
    """

    def __init__(self, num_joints: int, channels: int) -> None:
        super().__init__()
        self.adj = nn.Parameter(torch.eye(num_joints))
        self.fc = nn.Linear(channels, channels)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, motion_cl: Tensor) -> tuple[Tensor, Tensor]:
        x = motion_cl * self.adj.sum(dim=0)[:, None]  # Σ_v adj[v, w] on joint axis (B, T, V, C)
        x = torch.tanh(self.fc(x)).permute(0, 3, 1, 2)
        gamma, beta = self.bn(x).chunk(2, dim=1)
        return gamma, beta


def _instance_standardise(x: Tensor) -> Tensor:
    """(x - mean) / (unbiased std + 1e-6) over (T, V) per sample and channel; x (B, C, T, V)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True)
    return (x - mean) / (std + 1e-6)


class MotionModulatedBlock(nn.Module):
    """One motion-guided skeletal-temporal former block (docs/mmn-computation.md §4). (B, C, T, V) → same."""

    def __init__(self, cfg: MMNConfig, drop_path: float) -> None:
        super().__init__()
        c, v, heads, k = cfg.channels, cfg.num_joints, cfg.num_heads, cfg.kernel_size
        self.num_heads = heads
        quarter, half = c // 4, c // 2
        self.norm_1 = nn.LayerNorm(c)
        self.mapping = nn.Linear(c, c)
        self.gconv = nn.Parameter(torch.empty(heads, v, v))
        nn.init.trunc_normal_(self.gconv, std=0.02)
        self.tconv = nn.Conv2d(quarter, quarter, (k, 1), padding=(k // 2, 0), groups=heads)
        self.Motion = nn.Sequential(
            nn.Conv2d(half, half, (k, 1), padding=(k // 2, 0), groups=half, bias=False),
            nn.BatchNorm2d(half),
            nn.GELU(),
        )
        self.MSM = SkeletalModulation(v, half)
        self.MTM = nn.Sequential(
            nn.Conv2d(half, half, (k, 1), padding=(k // 2, 0)),
            nn.Tanh(),
            nn.BatchNorm2d(half),
        )
        self.aggregation_gate = nn.Sequential(
            nn.Conv2d(c, quarter, 1, bias=False),
            nn.BatchNorm2d(quarter),
            nn.ReLU(),
            nn.Conv2d(quarter, 3, 1, bias=False),
        )
        self.aggregation = nn.Sequential(
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.GELU(),
        )
        self.proj = nn.Linear(c, c)
        self.proj_drop = nn.Dropout(cfg.proj_drop)
        self.drop_path = DropPath(drop_path)
        self.norm_2 = nn.LayerNorm(c)
        self.mlp = Mlp(c, c * cfg.mlp_ratio)

    def skeletal_mix(self, g: Tensor) -> Tensor:
        """Per-head joint mixing: g (B, C/4, T, V) → Σ_u g_k[..., u] · A_k[v, u], same shape."""
        b, c, t, v = g.shape
        g = g.reshape(b, self.num_heads, c // self.num_heads, t, v)
        return torch.einsum("bhctu,hvu->bhctv", g, self.gconv).reshape(b, c, t, v)

    @staticmethod
    def frame_difference(m: Tensor) -> Tensor:
        """d[t] = m[t+1] - m[t], last difference repeated; m (B, C, T, V) with T ≥ 2."""
        d = m[:, :, 1:] - m[:, :, :-1]
        return torch.cat((d, d[:, :, -1:]), dim=2)

    def forward(self, x: Tensor, maps: dict[str, Tensor] | None = None) -> Tensor:
        c = x.shape[1]
        quarter, half = c // 4, c // 2
        r = x.permute(0, 2, 3, 1)  # (B, T, V, C)
        u = self.mapping(self.norm_1(r)).permute(0, 3, 1, 2)  # (B, C, T, V)
        g, h, m = u[:, :quarter], u[:, quarter:half], u[:, half:]

        x_gc = self.skeletal_mix(g)
        x_tc = self.tconv(h)
        motion = self.Motion(self.frame_difference(m))  # (B, C/2, T, V)

        gamma_s, beta_s = self.MSM(motion.permute(0, 2, 3, 1))
        gamma_t, beta_t = self.MTM(motion).chunk(2, dim=1)
        x_gcm = _instance_standardise(x_gc) * (1 + gamma_s) + beta_s
        x_tcm = _instance_standardise(x_tc) * (1 + gamma_t) + beta_t

        gate = torch.sigmoid(self.aggregation_gate(torch.cat((x_tcm, x_gcm, motion), dim=1)))
        # Released code: the *unmodulated* branches are weighted; modulation acts via the gate.
        x_agg = self.aggregation(torch.cat(
            (x_tc * gate[:, 0:1], x_gc * gate[:, 1:2], motion * gate[:, 2:3]), dim=1))

        if maps is not None:
            maps["msm_gamma"] = gamma_s.abs().mean(dim=1)
            maps["msm_beta"] = beta_s.abs().mean(dim=1)
            maps["mtm_gamma"] = gamma_t.abs().mean(dim=1)
            maps["mtm_beta"] = beta_t.abs().mean(dim=1)
            maps["gate_temporal"] = gate[:, 0]
            maps["gate_skeletal"] = gate[:, 1]
            maps["gate_motion"] = gate[:, 2]
            maps["agg_max"] = x_agg.amax(dim=1)

        r = r + self.drop_path(self.proj_drop(self.proj(x_agg.permute(0, 2, 3, 1))))
        r = r + self.drop_path(self.mlp(self.norm_2(r)))
        return r.permute(0, 3, 1, 2)


class Stage(nn.Module):
    def __init__(self, blocks: list[MotionModulatedBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, maps: list[dict[str, Tensor]] | None = None) -> Tensor:
        for block in self.blocks:
            block_maps: dict[str, Tensor] | None = {} if maps is not None else None
            x = block(x, block_maps)
            if maps is not None:
                maps.append(block_maps)
        return x


class TemporalDownsample(nn.Module):
    """Halve T: (3,1) conv stride (2,1), replicate padding, then BatchNorm."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduction = nn.Conv2d(channels, channels, (3, 1), stride=(2, 1), padding=(1, 0),
                                   padding_mode="replicate")
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.reduction(x))


def _conv_bn_relu(channels: int, factor: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, (factor, 1), stride=(factor, 1)),
                         nn.BatchNorm2d(channels), nn.ReLU())


class MotionConsistencyFusion(nn.Module):
    """Fuse the four scales (T, T/2, T/4, T/8) into one (B, C, T/8, V) map (docs/mmn-computation.md §5)."""

    def __init__(self, channels: int, drop: float) -> None:
        super().__init__()
        self.down1 = _conv_bn_relu(channels, 8)
        self.down2 = _conv_bn_relu(channels, 4)
        self.down3 = _conv_bn_relu(channels, 2)
        self.f4_proc = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU())
        self.gate_conv = nn.Sequential(
            nn.Conv2d(4 * channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, 4, 1))
        self.res_conv = nn.Conv2d(channels, channels, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, f1: Tensor, f2: Tensor, f3: Tensor, f4: Tensor) -> Tensor:
        scales = (self.down1(f1), self.down2(f2), self.down3(f3), self.f4_proc(f4))
        weights = torch.softmax(self.gate_conv(torch.cat(scales, dim=1)), dim=1)  # (B, 4, T/8, V)
        fused = sum(weights[:, i:i + 1] * s for i, s in enumerate(scales))
        return self.drop(fused) + self.res_conv(scales[3])


class MMN(nn.Module):
    """Motion-guided Modulation Network.

    ``forward(x, index_t)``: ``x`` (B, C_in, T, V) or (B, C_in, T, V, 1) preprocessed
    coordinates in body-part joint order, ``index_t`` (B, T) time codes in [-1, 1); returns
    logits (B, K). With ``return_maps=True`` also returns a list with one dict per block
    (12 for the released depths) of (B, T_stage, V) modulation maps named in
    :data:`MAP_NAMES`, in the model's joint order; the logits are unchanged.

    ``meta`` is the :class:`mmn.checkpoint.CheckpointMeta` of a loaded checkpoint (None for a
    model built in code).
    """

    meta: Any = None  # mmn.checkpoint.CheckpointMeta | None (that module imports this one)

    def __init__(self, cfg: MMNConfig = MMNConfig()) -> None:
        super().__init__()
        if cfg.channels % (4 * cfg.num_heads) != 0:
            raise ValueError(f"channels={cfg.channels} must be divisible by 4 × num_heads={cfg.num_heads}")
        if len(cfg.depths) != 4:
            raise ValueError("MMN's fusion reads exactly four stages; depths must have 4 entries")
        self.cfg = cfg
        c, v = cfg.channels, cfg.num_joints
        self.projection = nn.Sequential(
            nn.Conv2d(cfg.in_channels, 4, 1), nn.GELU(),
            nn.Conv2d(4, 6, 1), nn.GELU(),
            nn.Conv2d(6, c, 1))
        self.STPE = nn.Parameter(torch.empty(c, v))
        nn.init.trunc_normal_(self.STPE, std=0.02)

        rates = torch.linspace(0, cfg.drop_path, sum(cfg.depths)).tolist()
        stages, start = [], 0
        for depth in cfg.depths:
            stages.append(Stage([MotionModulatedBlock(cfg, rates[start + i]) for i in range(depth)]))
            start += depth
        self.MFM = nn.ModuleList(stages)
        self.DSs = nn.ModuleList(TemporalDownsample(c) for _ in range(len(cfg.depths) - 1))
        self.fusion = MotionConsistencyFusion(c, cfg.fusion_drop)
        self.head_drop = nn.Dropout(cfg.head_drop)
        self.head = nn.Linear(c, cfg.num_classes)

    def embed(self, x: Tensor, index_t: Tensor) -> Tensor:
        """(B, C_in, T, V) coordinates + (B, T) time codes → (B, C, T, V) embedding."""
        p = self.projection(x)
        te = sinusoidal_time_code(index_t, self.cfg.channels).to(p.dtype)  # (B, T, C)
        return p + te.permute(0, 2, 1).unsqueeze(-1) * self.STPE.unsqueeze(1)

    def forward(self, x: Tensor, index_t: Tensor, return_maps: bool = False):
        x = check_input(x, self.cfg)
        maps: list[dict[str, Tensor]] | None = [] if return_maps else None
        s = self.embed(x, index_t)
        features = [self.MFM[0](s, maps)]
        for down, stage in zip(self.DSs, self.MFM[1:]):
            s = down(s)  # released code: scales chain on the embedding, not on stage outputs
            features.append(stage(s, maps))
        z = self.fusion(*features)
        logits = self.head(self.head_drop(z.mean(dim=(2, 3))))
        return (logits, maps) if return_maps else logits


def check_input(x: Tensor, cfg: MMNConfig) -> Tensor:
    """(B, C_in, T, V[, 1]) clips → (B, C_in, T, V); ValueError naming what is wrong with the shape
    (one person only, channels and joints of ``cfg``, T divisible by 8 and long enough for the
    stages). Shared by :class:`MMN` and :class:`mmn.fast.FastMMN`."""
    if x.dim() == 5:
        if x.shape[-1] != 1:
            raise ValueError(f"MMN reads one person per clip; got M={x.shape[-1]}")
        x = x[..., 0]
    if x.dim() != 4 or x.shape[1] != cfg.in_channels or x.shape[3] != cfg.num_joints:
        raise ValueError(f"expected input (B, {cfg.in_channels}, T, {cfg.num_joints}[, 1]), got {tuple(x.shape)}")
    t = x.shape[2]
    min_t = 2 ** (len(cfg.depths) - 1) * 2
    if t % 8 != 0 or t < min_t:
        raise ValueError(f"T={t}: MMN needs a frame count divisible by 8 and at least {min_t} (released: 64)")
    return x


def mmn_ma52(**overrides) -> MMN:
    """MMN in the released MA-52 configuration: 44 joints, 52 classes (1,325,186 parameters)."""
    return MMN(MMNConfig(**{"num_joints": MA52_44.num_joints, "num_classes": MA52.num_classes, **overrides}))


def mmn_imigue(**overrides) -> MMN:
    """MMN in the released iMiGUE configuration: 22 joints, 32 classes (1,234,014 parameters)."""
    return MMN(MMNConfig(**{"num_joints": IMIGUE_22.num_joints, "num_classes": IMIGUE.num_classes, **overrides}))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
