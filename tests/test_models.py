import pytest
import torch
import torch.nn.functional as F
from torch import nn

from context_encoder.config import ModelConfig, load_config
from context_encoder.errors import ConfigError
from context_encoder.models import (
    ChannelwiseFC,
    FullyConnectedBottleneck,
    WholeImageEncoder,
    build_models,
    count_parameters,
    up_conv,
)


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("bottleneck", ["fc", "channelwise"])
@pytest.mark.parametrize("full_image", [False, True])
@pytest.mark.parametrize("skip", [False, True])
def test_shapes(size, bottleneck, full_image, skip):
    cfg = ModelConfig(image_size=size, nef=8, ngf=8, ndf=8, bottleneck=bottleneck, bottleneck_dim=32, skip=skip)
    g, d = build_models(cfg, full_image)
    out = g(torch.randn(2, 3, size, size))
    p = size if full_image else size // 2
    assert out.shape == (2, 3, p, p)
    assert out.abs().max() <= 1.0  # tanh output
    assert d(out).shape == (2,)
    assert g.encode(torch.randn(2, 3, size, size)).shape == (2, 64, 4, 4)


def test_paper_center_generator_has_71m_parameters():
    cfg = load_config("paper_center")
    g, d = build_models(cfg.model, cfg.full_image)
    n = count_parameters(g)
    assert 70.5e6 < n < 71.5e6, n  # paper / released code: about 71M
    bottleneck = count_parameters(g.bottleneck)
    assert 65.0e6 < bottleneck < 66.0e6  # 65M of them in the two bottleneck layers
    assert count_parameters(d) == pytest.approx(2.77e6, rel=0.01)


def test_convs_have_no_bias_and_bn_placement():
    cfg = load_config("paper_center")
    g, d = build_models(cfg.model, False)
    for m in list(g.modules()) + list(d.modules()):
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            assert m.bias is None
    enc = list(g.encoder)
    assert isinstance(enc[0], torch.nn.Conv2d) and isinstance(enc[1], torch.nn.LeakyReLU)  # no BN on conv1
    assert isinstance(enc[3], torch.nn.BatchNorm2d)
    dec = list(g.decoder)
    assert isinstance(dec[-2], torch.nn.ConvTranspose2d) and isinstance(dec[-1], torch.nn.Tanh)  # no BN at output
    assert isinstance(list(d.net)[1], torch.nn.LeakyReLU)


@pytest.mark.parametrize("bottleneck", ["fc", "channelwise"])
@pytest.mark.parametrize("full_image", [False, True])
@pytest.mark.parametrize("skip", [False, True])
def test_every_parameter_gets_a_finite_gradient(bottleneck, full_image, skip):
    cfg = ModelConfig(image_size=32, nef=8, ngf=8, ndf=8, bottleneck=bottleneck, bottleneck_dim=16, skip=skip)
    g, d = build_models(cfg, full_image)
    loss = d(g(torch.randn(4, 3, 32, 32))).mean()
    loss.backward()
    for name, p in list(g.named_parameters()) + list(d.named_parameters()):
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_fc_bottleneck_equals_the_released_conv_form():
    torch.manual_seed(0)
    b = FullyConnectedBottleneck(c_in=6, dim=10, c_out=5).eval()
    for bn in (b.encode_bn, b.decode_bn):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(3, 6, 4, 4)
    # layer 6: 4x4 valid conv to (10, 1, 1); layer 7: 4x4 up-conv back to (5, 4, 4)
    z = F.conv2d(x, b.encode.weight.view(10, 6, 4, 4))
    z = F.leaky_relu(
        F.batch_norm(
            z.flatten(1), b.encode_bn.running_mean, b.encode_bn.running_var, b.encode_bn.weight, b.encode_bn.bias
        ),
        0.2,
    )
    y = F.conv_transpose2d(z[:, :, None, None], b.decode.weight.t().reshape(10, 5, 4, 4))
    y = torch.relu(
        F.batch_norm(y, b.decode_bn.running_mean, b.decode_bn.running_var, b.decode_bn.weight, b.decode_bn.bias)
    )
    torch.testing.assert_close(b(x), y, rtol=1e-5, atol=1e-5)


def test_channelwise_fc_connects_each_map_only_to_itself():
    torch.manual_seed(0)
    layer = ChannelwiseFC(channels=3, size=4)
    torch.nn.init.normal_(layer.weight)
    x = torch.randn(2, 3, 4, 4)
    expected = torch.einsum("bmi,mio->bmo", x.flatten(2), layer.weight).view(2, 3, 4, 4)
    torch.testing.assert_close(layer(x), expected)
    x2 = x.clone()
    x2[:, 1] += 1.0  # changing map 1 changes output map 1 only
    diff = (layer(x2) - layer(x)).abs().sum(dim=(0, 2, 3))
    assert diff[0] == 0 and diff[2] == 0 and diff[1] > 0
    assert sum(p.numel() for p in layer.parameters()) == 3 * 4**4  # m * n^4


def test_init_is_dcgan_and_seeded():
    cfg = load_config("paper_center").model
    g1, _ = build_models(cfg, False, seed=3)
    g2, _ = build_models(cfg, False, seed=3)
    w = g1.encoder[0].weight
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    bn = g1.encoder[3]
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and bn.bias.abs().max() == 0
    for a, b in zip(g1.parameters(), g2.parameters()):
        assert torch.equal(a, b)


def test_skip_connections_see_the_context_next_to_the_hole():
    """With skips, a change right outside the centre reaches the prediction through a short path."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=32, nef=8, ngf=8, ndf=8, bottleneck="channelwise", skip=True)
    g, _ = build_models(cfg, False)
    g.eval()
    x = torch.randn(1, 3, 32, 32)
    y = x.clone()
    y[..., 7, 8:24] += 1.0  # the row just above the 16 px centre
    diff = (g(y) - g(x)).abs()[0].sum(0)  # (16, 16) over the centre
    assert diff[:2].sum() > diff[-2:].sum()  # the top of the prediction changes most


@pytest.mark.parametrize("full_image", [False, True])
def test_residual_generator_starts_as_its_input_and_needs_the_mask(full_image):
    cfg = ModelConfig(image_size=32, nef=8, ngf=8, ndf=8, bottleneck="channelwise", skip=True, residual=True)
    g, _ = build_models(cfg, full_image)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    m = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    m[..., 10:22, 10:22] = True
    expected = x if full_image else x[..., 8:24, 8:24]
    torch.testing.assert_close(g(x, m), expected)  # zero output layer: the fill is the starting point
    with pytest.raises(ValueError, match="needs the hole mask"):
        g(x)
    with torch.no_grad():  # once trained, the mask channel changes the prediction
        [p for n, p in g.named_parameters() if n.startswith("decoder")][-1].normal_(0, 0.1)
    g.eval()
    out = g(x, m)
    assert not torch.allclose(out, g(x, ~m))
    known = ~m[..., 8:24, 8:24] if not full_image else ~m
    assert torch.equal(out[known.expand_as(out)], expected[known.expand_as(out)])  # only the hole changes
    assert g(x, m).abs().max() <= 1.0  # clamped in eval mode


def test_residual_generator_encodes_a_whole_image_without_a_mask():
    cfg = ModelConfig(image_size=32, nef=8, ngf=8, ndf=8, bottleneck="channelwise", residual=True)
    g, _ = build_models(cfg, full_image=False)
    g.eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    no_hole = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    feats = g.encode(x)  # feature probes pass no mask: every pixel is known
    assert feats.shape == (2, 64, 4, 4)
    torch.testing.assert_close(feats, g.encode(x, no_hole))
    assert not torch.allclose(feats, g.encode(x, ~no_hole))  # the mask channel does reach the encoder
    torch.testing.assert_close(WholeImageEncoder(g)(x), feats)  # what the feature probes see


def test_fourier_context_sees_the_whole_map():
    """A spectral block's output at one corner depends on the input at the opposite corner; a 3x3 conv's does not."""
    from context_encoder.models import FourierBlock, init_weights

    block = FourierBlock(4)
    init_weights(block, torch.Generator().manual_seed(0))
    block.eval()
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    block(x)[0, :, 0, 0].sum().backward()
    assert x.grad[0, :, -1, -1].abs().sum() > 0
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    x.grad = None
    conv(x)[0, :, 0, 0].sum().backward()
    assert x.grad[0, :, -1, -1].abs().sum() == 0


@pytest.mark.parametrize("preset", ["scenes128_center", "scenes_region"])
def test_fourier_context_option_builds_and_keeps_the_faithful_layout(preset):
    from context_encoder.config import apply_overrides

    cfg = load_config(preset)
    plain, _ = build_models(cfg.model, cfg.full_image)
    far = apply_overrides(cfg, ["model.context=fourier"])
    gen, _ = build_models(far.model, far.full_image)
    faithful, _ = build_models(apply_overrides(cfg, ["model.context=none"]).model, cfg.full_image)
    assert set(faithful.state_dict()) == set(plain.state_dict())  # "none" is the faithful layout, names and all
    assert count_parameters(gen) > count_parameters(plain)
    s = cfg.model.image_size
    x, m = torch.rand(2, 3, s, s) * 2 - 1, torch.zeros(2, 1, s, s, dtype=torch.bool)
    m[..., s // 4 : s // 2, s // 4 : s // 2] = True
    assert gen(x, m).shape == plain(x, m).shape
    with pytest.raises(ConfigError, match="model.context must be one of"):
        apply_overrides(cfg, ["model.context=attention"])


@pytest.mark.parametrize("autocast", [False, True])
def test_up_conv_fast_path_matches_the_transposed_convolution(autocast):
    """On a 4 x 4 map at CPU inference `up_conv` takes a matrix product: the same sums to float rounding."""
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(24, 8, 4, 2, 1, bias=False)
    x = torch.randn(3, 24, 4, 4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        expected, got = layer(x).float(), up_conv(layer, x).float()
    assert got.shape == (3, 8, 8, 8)
    tolerance = 0.05 if autocast else 1e-5  # bf16 keeps 8 bits of mantissa
    assert (got - expected).abs().max() < tolerance * expected.abs().max()
    wide = torch.randn(1, 24, 8, 8)  # larger maps, and training, go through the layer itself
    with torch.no_grad():
        assert torch.equal(up_conv(layer, wide), layer(wide))
    assert torch.equal(up_conv(layer, x), layer(x)) and up_conv(layer, x).requires_grad


@pytest.mark.parametrize("skip", [False, True])
def test_generator_inference_matches_its_training_path(skip):
    """Under no_grad the generator's first up-conv takes `up_conv`'s product: the same output to rounding."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=32, nef=8, ngf=8, ndf=8, bottleneck="fc", bottleneck_dim=32, skip=skip)
    g, _ = build_models(cfg, True)
    g.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fast = g(x)
    assert torch.allclose(fast, g(x), atol=1e-5)  # with gradients: every layer as it is
