"""Generator (context encoder + decoder) and discriminator of the paper's Fig. 9a, for any power-of-two size.

Shapes for the faithful 128 px preset (`paper_center`):

    input (3, 128, 128) -> encoder -> (512, 4, 4) -> bottleneck -> (512, 4, 4) -> decoder -> (3, 64, 64)

Every convolution is 4x4 without bias (the released code zeroes biases every step); BatchNorm follows
every layer but the first conv and the output up-conv; LeakyReLU(0.2) in the encoder and D, ReLU in
the decoder, Tanh at the output.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .geometry import center_patch_bounds


def _widths(base: int, n_layers: int, top: int) -> list[int]:
    """Channel widths of a DCGAN stack that ends at `base * top` and never goes below `base`.

    For base 64 and five layers (128 px -> 4 px) this is [64, 64, 128, 256, 512], the released encoder.
    """
    top_exp = int(math.log2(top))
    return [base * 2 ** max(0, top_exp - (n_layers - 1 - i)) for i in range(n_layers)]


def _down(c_in: int, c_out: int, bn: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class FullyConnectedBottleneck(nn.Module):
    """The released 4000-unit bottleneck (layers 6-7 of Fig. 9a).

    Layer 6 is a 4x4 valid conv from (C, 4, 4) to (D, 1, 1); layer 7 a 4x4 up-conv back to (C', 4, 4).
    On a 4x4 input both are exactly matrix products on the flattened features, which is how they are
    computed here (`nn.Linear`, no bias): the same maths as the conv form, about 2x faster on a CPU.
    A conv weight of shape (D, C, 4, 4) is `encode.weight.view(D, C, 4, 4)`.
    """

    def __init__(self, c_in: int, dim: int, c_out: int, size: int = 4):
        super().__init__()
        self.c_out, self.size = c_out, size
        self.encode = nn.Linear(c_in * size * size, dim, bias=False)  # (C*16) -> D
        self.encode_bn = nn.BatchNorm1d(dim)
        self.decode = nn.Linear(dim, c_out * size * size, bias=False)  # D -> (C'*16)
        self.decode_bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        z = nn.functional.leaky_relu(self.encode_bn(self.encode(x.flatten(1))), 0.2)  # (B, D)
        y = self.decode(z).view(b, self.c_out, self.size, self.size)  # (B, C', 4, 4)
        return torch.relu(self.decode_bn(y))


class ChannelwiseFC(nn.Module):
    """Channel-wise fully connected layer (paper Sec. 3.1): each of m maps of n x n connects only to itself.

    m * n^4 weights instead of the m^2 * n^4 of a full connection; no information flows between channels.
    """

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.size = size
        self.weight = nn.Parameter(torch.empty(channels, size * size, size * size))  # (m, n^2 in, n^2 out)

    def forward(self, x: Tensor) -> Tensor:
        b, m, h, w = x.shape
        assert h == w == self.size, f"ChannelwiseFC built for {self.size}x{self.size} maps, got {h}x{w}"
        y = torch.bmm(x.reshape(b, m, h * w).transpose(0, 1), self.weight)  # (m, B, n^2)
        return y.transpose(0, 1).reshape(b, m, h, w)


class ChannelwiseBottleneck(nn.Module):
    """The paper's bottleneck: channel-wise FC, then a 1x1 conv that mixes channels (Fig. 9b)."""

    def __init__(self, c_in: int, c_out: int, size: int = 4):
        super().__init__()
        self.channelwise = ChannelwiseFC(c_in, size)
        self.channelwise_bn = nn.BatchNorm2d(c_in)
        self.mix = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.mix_bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.leaky_relu(self.channelwise_bn(self.channelwise(x)), 0.2)  # (C, 4, 4)
        return torch.relu(self.mix_bn(self.mix(x)))  # (C', 4, 4)


class FourierBlock(nn.Module):
    """Residual spectral block: a 1x1 conv on the feature map's 2-D Fourier transform (LaMa's global branch).

    x + BN(conv1x1(irfft2(ReLU(BN(conv1x1([Re, Im] of rfft2(x))))))): every output position depends on
    every input position of the map. The transform runs in float32 (FFTs have no bfloat16 kernels).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.spectral = nn.Conv2d(2 * channels, 2 * channels, 1, bias=False)
        self.spectral_bn = nn.BatchNorm2d(2 * channels)
        self.mix = nn.Conv2d(channels, channels, 1, bias=False)
        self.mix_bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        with torch.autocast(x.device.type, enabled=False):
            f = torch.fft.rfft2(x.float(), norm="ortho")
            f = torch.relu(self.spectral_bn(self.spectral(torch.cat([f.real, f.imag], dim=1))))
            real, imag = f.chunk(2, dim=1)
            y = torch.fft.irfft2(torch.complex(real, imag), s=(h, w), norm="ortho")
        return x + self.mix_bn(self.mix(y.to(x.dtype)))


def with_mask_channel(x: Tensor, mask: Tensor | None) -> Tensor:
    """(B, 3, S, S) images with the hole mask (B, 1, S, S) appended as mask * 2 - 1; None means no hole."""
    m = torch.zeros_like(x[:, :1]) if mask is None else mask.to(x.dtype).expand(x.shape[0], 1, *x.shape[-2:])
    return torch.cat([x, m * 2 - 1], dim=1)


def up_conv(layer: nn.ConvTranspose2d, x: Tensor) -> Tensor:
    """`layer(x)`, with the same sums taken faster where that measured faster: CPU inference on a map of at
    most 4 x 4 (the first up-conv after the bottleneck). There oneDNN's transposed convolution ran 5x slower
    in bf16 and 1.8x in fp32 (32 maps of 1024 x 4 x 4 to 256 x 8 x 8, one core) than one matrix product of
    every input pixel with the 16 kernel taps followed by 16 strided adds; larger maps are faster as they are.
    """
    k, stride, pad = layer.kernel_size, layer.stride, layer.padding
    if (
        x.shape[-1] > 4
        or x.device.type != "cpu"
        or torch.is_grad_enabled()
        or torch.jit.is_tracing()
        or (k, stride, pad) != ((4, 4), (2, 2), (1, 1))
        or layer.bias is not None
        or layer.groups != 1
        or layer.output_padding != (0, 0)
        or layer.dilation != (1, 1)
    ):
        return layer(x)
    b, c_in, h, w = x.shape
    c_out = layer.out_channels
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    cols = x.permute(0, 2, 3, 1).reshape(-1, c_in).to(dtype)
    taps = (cols @ layer.weight.permute(0, 2, 3, 1).reshape(c_in, 16 * c_out).to(dtype)).view(b, h, w, 4, 4, c_out)
    # input pixel (i, j) with tap (ky, kx) lands on output (2i + ky - 1, 2j + kx - 1): one padded row/column
    out = taps.new_zeros(b, 2 * h + 2, 2 * w + 2, c_out)
    for ky in range(4):
        for kx in range(4):
            out[:, ky : ky + 2 * h : 2, kx : kx + 2 * w : 2] += taps[:, :, :, ky, kx]
    return out[:, 1:-1, 1:-1].permute(0, 3, 1, 2)  # (B, C, 2H, 2W), channels-last in memory


class Generator(nn.Module):
    """Context encoder: masked image (B, 3, S, S) in [-1, 1] -> prediction in [-1, 1].

    `full_image=False` predicts the centre (B, 3, S/2, S/2) (the hole plus the overlap ring);
    `full_image=True` predicts the whole (B, 3, S, S) image, as `train_random.lua` does for random masks.

    `cfg.skip` (beyond the paper) feeds each up-conv the encoder features of the same image region and
    scale as well: for a centre prediction the decoder map of size k covers the S/2 centre, which the
    encoder map of size 2k shows in its central k x k crop; for a whole-image prediction it is the
    encoder map of size k itself. The bottleneck stays; the skips carry the fine detail of the context
    next to the hole, which a 4x4 bottleneck cannot.

    `cfg.residual` (beyond the paper) gives G the hole mask as a fourth input channel and adds its
    Tanh output, inside the hole only, to the input's predicted region, so G learns a correction of
    what its input holds in the hole (with `mask.fill = "harmonic"`, a smooth
    membrane); `build_models` zeroes the output layer so that training starts from that fill. The sum
    is clamped to [-1, 1] in eval mode only, so no pixel's gradient is cut off in training.
    """

    def __init__(self, cfg: ModelConfig, full_image: bool = False):
        super().__init__()
        self.image_size, self.full_image, self.skip = cfg.image_size, full_image, cfg.skip
        self.residual = cfg.residual
        c_input = 4 if cfg.residual else 3  # a residual G also sees the hole mask (+1 hole, -1 known)
        n_down = int(math.log2(cfg.image_size)) - 2  # stride-2 convs down to 4x4
        widths = _widths(cfg.nef, n_down, 8)
        layers: list[nn.Module] = []
        c = c_input
        enc_channels: dict[int, int] = {}  # feature size -> channels of the encoder output at that size
        for i, w in enumerate(widths):  # state size halves each layer, ends at (nef*8) x 4 x 4
            layers += _down(c, w, bn=i > 0)
            c = w
            enc_channels[cfg.image_size >> (i + 1)] = w
            if cfg.context == "fourier" and cfg.image_size >> (i + 1) == max(cfg.image_size // 8, 8):
                layers += [FourierBlock(w) for _ in range(cfg.context_blocks)]
        self.encoder = nn.Sequential(*layers)

        if cfg.bottleneck == "fc":
            self.bottleneck: nn.Module = FullyConnectedBottleneck(c, cfg.bottleneck_dim, cfg.ngf * 8)
        else:
            self.bottleneck = ChannelwiseBottleneck(c, cfg.ngf * 8)

        self.out_size = cfg.image_size if full_image else cfg.image_size // 2
        n_up = int(math.log2(self.out_size)) - 2  # stride-2 up-convs from 4x4 to the output size
        up_widths = list(reversed(_widths(cfg.ngf, n_up - 1, 4))) if n_up > 1 else []
        layers = []
        c, k = cfg.ngf * 8, 4

        def skip_channels(size: int) -> int:
            return enc_channels.get(size if full_image else 2 * size, 0) if cfg.skip else 0

        for w in up_widths:  # state size doubles each layer: (ngf*4) x 8 x 8, (ngf*2) x 16 x 16, ...
            up = nn.ConvTranspose2d(c + skip_channels(k), w, 4, 2, 1, bias=False)
            layers += [up, nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c, k = w, 2 * k
        layers += [nn.ConvTranspose2d(c + skip_channels(k), 3, 4, 2, 1, bias=False), nn.Tanh()]  # 3 x out x out
        self.decoder = nn.Sequential(*layers)

    def _with_mask(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if not self.residual:
            return x
        if mask is None:
            raise ValueError("a residual generator needs the hole mask: call gen(x, mask)")
        return with_mask_channel(x, mask)

    def encode(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Encoder features (B, nef*8, 4, 4): the self-supervised representation.

        A residual generator called without a mask sees the whole image as known (no hole).
        """
        return self.encoder(with_mask_channel(x, mask) if self.residual else x)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Prediction for `x`, the image with its hole filled; `mask` (B, 1, S, S) is used by residual G only."""
        s = self.image_size
        assert x.shape[1:] == (3, s, s), f"Generator expects (B, 3, {s}, {s}), got {tuple(x.shape)}"
        out = self._predict(self._with_mask(x, mask))
        if not self.residual:
            return out
        hole = mask.to(x.dtype)
        if not self.full_image:
            lo, hi = center_patch_bounds(s)
            x, hole = x[..., lo:hi, lo:hi], hole[..., lo:hi, lo:hi]
        out = x + out * hole  # known pixels pass through: the correction acts in the hole only
        return out if self.training else out.clamp(-1.0, 1.0)

    @torch.no_grad()
    def zero_output_(self) -> None:
        """Zero the output up-conv: a residual generator then starts as the identity on its input."""
        last = [m for m in self.decoder if isinstance(m, nn.ConvTranspose2d)][-1]
        last.weight.zero_()

    def _predict(self, x: Tensor) -> Tensor:
        if not self.skip:
            h = self.bottleneck(self.encoder(x))
            for layer in self.decoder:
                h = up_conv(layer, h) if isinstance(layer, nn.ConvTranspose2d) else layer(h)
            return h
        features: dict[int, Tensor] = {}
        h = x
        for layer in self.encoder:
            h = layer(h)
            if isinstance(layer, (nn.LeakyReLU, FourierBlock)):  # the last one of each size is kept
                features[int(h.shape[-1])] = h  # int: a plain key also when traced for ONNX export
        h = self.bottleneck(h)
        for layer in self.decoder:
            if isinstance(layer, nn.ConvTranspose2d):
                k = int(h.shape[-1])
                e = features[k] if self.full_image else features[2 * k]
                if not self.full_image:  # the centre k x k of the 2k map covers the predicted centre
                    e = e[..., k // 2 : k // 2 + k, k // 2 : k // 2 + k]
                h = torch.cat([h, e], dim=1)
            h = up_conv(layer, h) if isinstance(layer, nn.ConvTranspose2d) else layer(h)
        return h


class AlexNetGenerator(nn.Module):
    """The paper's feature-learning network (Fig. 9b): AlexNet conv1-pool5, channel-wise FC, five up-convs.

    Input (B, 3, 227, 227). Encoder: conv1 11x11/4 (96) - pool - conv2 5x5 (256) - pool - conv3 3x3 (384)
    - conv4 3x3 (384) - conv5 3x3 (256) - pool5 -> (256, 6, 6), with ReLU after each conv (BatchNorm
    after conv2-5 here, for stable training from scratch). `pool_free=True` replaces the three max
    pools by strides in conv2, conv3 and conv5 (same 6x6 output). Bottleneck: channel-wise FC over the
    6x6 maps plus a 1x1 conv. Decoder: five stride-2 up-convs 6 -> 192 px, then a bilinear resize to
    the input size; the whole image is predicted (random masks). Trained with reconstruction only: the
    paper's adversarial loss diverged with this encoder.
    """

    def __init__(self, cfg: ModelConfig, full_image: bool = True, pool_free: bool = False):
        super().__init__()
        self.image_size, self.full_image, self.skip = cfg.image_size, True, False

        def conv(c_in: int, c_out: int, k: int, stride: int, pad: int, bn: bool = True) -> list[nn.Module]:
            return (
                [nn.Conv2d(c_in, c_out, k, stride, pad, bias=False)]
                + ([nn.BatchNorm2d(c_out)] if bn else [])
                + [nn.ReLU(inplace=True)]
            )

        if pool_free:
            layers = conv(3, 96, 11, 4, 0, bn=False)  # 55
            layers += conv(96, 256, 5, 2, 2) + conv(256, 384, 3, 2, 1)  # 28, 14
            layers += conv(384, 384, 3, 1, 1) + conv(384, 256, 3, 2, 0)  # 14, 6
        else:
            pool = [nn.MaxPool2d(3, 2)]
            layers = conv(3, 96, 11, 4, 0, bn=False) + pool  # 55 -> 27
            layers += conv(96, 256, 5, 1, 2) + pool  # 27 -> 13
            layers += conv(256, 384, 3, 1, 1) + conv(384, 384, 3, 1, 1) + conv(384, 256, 3, 1, 1) + pool  # 13 -> 6
        self.encoder = nn.Sequential(*layers)
        self.bottleneck = ChannelwiseBottleneck(256, 256, size=6)
        widths = [cfg.ngf * 4, cfg.ngf * 2, cfg.ngf, cfg.ngf]
        layers, c = [], 256
        for w in widths:  # 6 -> 12 -> 24 -> 48 -> 96
            layers += [nn.ConvTranspose2d(c, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        layers += [nn.ConvTranspose2d(c, 3, 4, 2, 1, bias=False), nn.Tanh()]  # 192
        self.decoder = nn.Sequential(*layers)

    def encode(self, x: Tensor) -> Tensor:
        """pool5 features (B, 256, 6, 6)."""
        return self.encoder(x)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        s = self.image_size
        assert x.shape[1:] == (3, s, s), f"AlexNetGenerator expects (B, 3, {s}, {s}), got {tuple(x.shape)}"
        y = self.decoder(self.bottleneck(self.encoder(x)))
        return nn.functional.interpolate(y, size=(s, s), mode="bilinear", align_corners=False)


class WholeImageEncoder(nn.Module):
    """A generator's encoder on whole images (no hole), as the feature probes use it: (B, 3, S, S) -> features.

    A residual generator's encoder takes the hole mask as a fourth channel; here every pixel is known.
    """

    def __init__(self, gen: nn.Module):
        super().__init__()
        self.encoder = gen.encoder
        self.mask_channel = bool(getattr(gen, "residual", False))
        # a conv block runs from one Conv2d to the module before the next: conv (BN) activation (pool or
        # spectral blocks); its output is the activation the linear probes read at that depth
        starts = [i for i, m in enumerate(self.encoder) if isinstance(m, nn.Conv2d)]
        self.block_ends = [s - 1 for s in starts[1:]] + [len(self.encoder) - 1]

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(with_mask_channel(x, None) if self.mask_channel else x)

    def blocks(self, x: Tensor) -> list[Tensor]:
        """The output of every conv block, shallowest first; the last one is `forward(x)`.

        For the 32 px DCGAN encoder (nef 64): (128, 16, 16), (256, 8, 8), (512, 4, 4).
        """
        h, outs = with_mask_channel(x, None) if self.mask_channel else x, []
        for i, layer in enumerate(self.encoder):
            h = layer(h)
            if i in self.block_ends:
                outs.append(h)
        return outs


def make_generator(cfg: ModelConfig, full_image: bool) -> nn.Module:
    """The generator `cfg.encoder` names: the DCGAN context encoder or the AlexNet feature learner."""
    if cfg.encoder == "dcgan":
        return Generator(cfg, full_image)
    return AlexNetGenerator(cfg, full_image, pool_free=cfg.encoder == "alexnet-nopool")


class Discriminator(nn.Module):
    """DCGAN discriminator on the predicted patch (centre mode) or the whole image (random masks).

    It never sees the context: the paper found a context-conditioned D exploits the seam. Returns one
    logit per image (the released code's Sigmoid + BCE is computed as BCE-with-logits, the same maths).
    """

    def __init__(self, cfg: ModelConfig, full_image: bool = False):
        super().__init__()
        self.in_size = cfg.image_size if full_image else cfg.image_size // 2
        self.net_size = 2 ** int(math.log2(self.in_size))  # other sizes (AlexNet's 227) are resized down
        n_down = int(math.log2(self.net_size)) - 2
        layers: list[nn.Module] = []
        c = 3
        for i, w in enumerate(_widths(cfg.ndf, n_down, 8)):  # ends at (ndf*8) x 4 x 4
            layers += _down(c, w, bn=i > 0)
            c = w
        layers += [nn.Conv2d(c, 1, 4, bias=False)]  # 1 x 1 x 1
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        s = self.in_size
        assert x.shape[1:] == (3, s, s), f"Discriminator expects (B, 3, {s}, {s}), got {tuple(x.shape)}"
        if self.net_size != s:
            x = nn.functional.interpolate(x, size=(self.net_size,) * 2, mode="bilinear", antialias=True)
        return self.net(x).flatten()  # (B,) logits


@torch.no_grad()
def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """DCGAN init: conv and linear weights N(0, 0.02); BatchNorm gamma N(1, 0.02), beta 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
        elif isinstance(m, ChannelwiseFC):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
            nn.init.zeros_(m.bias)


def build_models(
    cfg: ModelConfig, full_image: bool, seed: int = 0, device: torch.device | str = "cpu"
) -> tuple[nn.Module, Discriminator]:
    """Generator and discriminator with DCGAN init drawn from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    g, d = make_generator(cfg, full_image), Discriminator(cfg, full_image)
    init_weights(g, gen)
    init_weights(d, gen)
    if getattr(g, "residual", False):
        g.zero_output_()
    return g.to(device), d.to(device)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
