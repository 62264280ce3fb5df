"""Construction, training state, memory and input checks of the MLLA backbone."""
import pytest
import torch
import torch.nn as nn

from mlla_mm import MLLA

SMALL_ARCH = dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 4, 8])


def projected_loss(outputs, seed=0):
    """A scalar that depends on every output element (a plain sum would not reach past the output LayerNorms,
    whose normalised outputs sum to a constant at initialisation)."""
    generator = torch.Generator().manual_seed(seed)
    return sum((o * torch.randn(o.shape, generator=generator)).sum() for o in outputs)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Counted on the official downstream backbone (LeapLabTHU/MLLA's detection MLLA, output norms of all four stages,
# no classifier head), not on this code.
@pytest.mark.parametrize('arch,expected', [('tiny', 23_880_096), ('small', 42_502_944), ('base', 95_216_304),
                                           ('t', 23_880_096), ('b', 95_216_304)])
def test_parameter_counts_equal_the_official_backbones(arch, expected):
    assert count_parameters(MLLA(arch)) == expected


def test_arch_dict_and_feature_shapes():
    model = MLLA(dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])).eval()
    outs = model(torch.randn(2, 3, 61, 90))
    # stem pads to 64x92 -> 16x23, then each merging halves with ceil: 8x12, 4x6, 2x3
    assert [tuple(o.shape) for o in outs] == [(2, 32, 16, 23), (2, 64, 8, 12), (2, 128, 4, 6), (2, 256, 2, 3)]
    assert all(o.is_contiguous() for o in outs)


def test_out_indices_select_stages_and_their_norms():
    model = MLLA(SMALL_ARCH, out_indices=(1, 3)).eval()
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [32, 128]
    assert hasattr(model, 'norm1') and hasattr(model, 'norm3') and not hasattr(model, 'norm0')
    assert MLLA(SMALL_ARCH, out_indices=-1).out_indices == (3,)


@pytest.mark.parametrize('kwargs,error,fragment', [
    (dict(arch='huge'), KeyError, "'huge'"),
    (dict(arch=dict(embed_dims=16, depths=[1, 1])), KeyError, 'num_heads'),
    (dict(arch=dict(embed_dims=16, depths=[1, 1], num_heads=[1])), ValueError, 'one value per stage'),
    (dict(arch=dict(embed_dims=18, depths=[1, 1], num_heads=[1, 1])), ValueError, 'divisible'),
    (dict(arch=SMALL_ARCH, out_indices=(4,)), ValueError, 'out_indices'),
    (dict(arch=SMALL_ARCH, frozen_stages=5), ValueError, 'frozen_stages'),
    (dict(arch=dict(SMALL_ARCH, embed_dims=0)), ValueError, 'embed_dims must be a positive integer, got 0'),
    (dict(arch=dict(SMALL_ARCH, embed_dims=-16)), ValueError, 'embed_dims must be a positive integer, got -16'),
    (dict(arch=dict(SMALL_ARCH, embed_dims=16.5)), ValueError, 'embed_dims must be a positive integer, got 16.5'),
    (dict(arch=dict(SMALL_ARCH, depths=[1, 0, 1, 1])), ValueError, 'depths must be a positive integer, got 0'),
    (dict(arch=dict(SMALL_ARCH, depths=[1, -2, 1, 1])), ValueError, 'depths must be a positive integer, got -2'),
    (dict(arch=dict(SMALL_ARCH, depths=4)), ValueError, 'depths must be a non-empty list'),
    (dict(arch=dict(SMALL_ARCH, num_heads=[1, 0, 4, 8])), ValueError, 'num_heads must be a positive integer'),
    (dict(arch=dict(SMALL_ARCH, num_heads=[1, -2, 4, 8])), ValueError, 'num_heads must be a positive integer'),
    (dict(arch=SMALL_ARCH, patch_size=0), ValueError, 'patch_size must be 4'),
    (dict(arch=SMALL_ARCH, patch_size=-4), ValueError, 'patch_size must be 4'),
    (dict(arch=SMALL_ARCH, in_channels=0), ValueError, 'in_channels must be a positive integer, got 0'),
    (dict(arch=SMALL_ARCH, in_channels=-3), ValueError, 'in_channels must be a positive integer, got -3'),
    (dict(arch=SMALL_ARCH, out_indices=(0, 1.0)), ValueError, 'out_indices must hold integers, got 1.0'),
    (dict(arch=SMALL_ARCH, out_indices=('1',)), ValueError, "out_indices must hold integers, got '1'"),
    (dict(arch=SMALL_ARCH, frozen_stages=1.5), ValueError, 'frozen_stages must be an integer .* got 1.5'),
    (dict(arch=SMALL_ARCH, frozen_stages='1'), ValueError, "frozen_stages must be an integer .* got '1'"),
])
def test_bad_arguments_are_named(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        MLLA(**kwargs)


@pytest.mark.parametrize('dtype', [torch.float64, torch.float16, torch.bfloat16])
def test_an_input_of_another_dtype_than_the_weights_is_named(dtype):
    """Outside autocast an input must have the weights' dtype; the error says which dtypes met and what to do."""
    model = MLLA(SMALL_ARCH).eval()
    with pytest.raises(ValueError, match=fr'MLLA got a {dtype} input for its torch.float32 weights outside autocast: '
                                         r'.*model.to\(' + str(dtype).replace('.', r'\.')):
        model(torch.randn(1, 3, 32, 32, dtype=dtype))


def test_float64_input_under_autocast_is_named():
    with pytest.raises(ValueError, match='torch.float64 input for its torch.float32 weights under autocast'):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            MLLA(SMALL_ARCH).eval()(torch.randn(1, 3, 32, 32, dtype=torch.float64))


def test_a_half_precision_model_outside_autocast_is_named_on_the_plain_path():
    """The plain path computes RoPE in float32, as the official model does: half precision runs under autocast."""
    model = MLLA(SMALL_ARCH, attn_impl='plain').eval().to(torch.bfloat16)
    with pytest.raises(ValueError, match='torch.bfloat16 model and input outside autocast.*torch.autocast'):
        model(torch.randn(1, 3, 32, 32, dtype=torch.bfloat16))


@pytest.mark.parametrize('dtype,attn_impl', [(torch.float64, 'plain'), (torch.float64, 'fast'),
                                             (torch.bfloat16, 'fast')])
def test_matching_dtypes_and_autocast_run(dtype, attn_impl):
    """A model converted to the input's dtype runs; so does a float32 model on half inputs under autocast."""
    torch.manual_seed(0)
    model = MLLA(SMALL_ARCH, attn_impl=attn_impl).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        converted = model.to(dtype)(x.to(dtype))
        model.float()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            autocast = model(x.to(torch.float16))
    for out, ref in zip(converted, reference):
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2)
    for out, ref in zip(autocast, reference):
        torch.testing.assert_close(out.float(), ref, rtol=1e-1, atol=1e-1)


@pytest.mark.parametrize('bad_input,fragment', [
    (torch.randn(3, 32, 32), r'shape \(3, 32, 32\)'),
    (torch.randn(1, 4, 32, 32), r'shape \(1, 4, 32, 32\)'),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), 'torch.uint8'),
    (torch.randn(1, 3, 0, 32), 'empty'),
    ([1, 2, 3], 'got list'),
])
def test_bad_input_gets_a_clear_value_error(bad_input, fragment):
    model = MLLA(SMALL_ARCH)
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)|empty') as info:
        model(bad_input)
    assert info.match(fragment)


def test_in_channels_is_honoured():
    model = MLLA(SMALL_ARCH, in_channels=4).eval()
    assert model(torch.randn(1, 4, 32, 32))[0].shape[1] == 16
    with pytest.raises(ValueError, match=r'\(N, 4, H, W\)'):
        model(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize('size', [(1, 1), (2, 3), (5, 7), (4, 4)])
def test_tiny_inputs_still_work(size):
    outs = MLLA(SMALL_ARCH).eval()(torch.randn(1, 3, *size))
    assert all(o.shape[-2:] == (1, 1) or o.shape[-2] <= 2 for o in outs)
    assert all(torch.isfinite(o).all() for o in outs)


def _trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_frozen_stages_stay_frozen_through_train():
    model = MLLA(SMALL_ARCH, frozen_stages=2)
    model.train()
    frozen = [model.patch_embed, model.layers[0], model.layers[1], model.norm0, model.norm1]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    assert model.layers[2].training and all(p.requires_grad for p in model.layers[2].parameters())
    # a training step changes nothing frozen, BatchNorm statistics included
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    projected_loss(model(torch.randn(2, 3, 64, 64))).backward()
    optimizer.step()
    after = model.state_dict()
    for key in before:
        frozen_key = key.startswith(('patch_embed.', 'layers.0.', 'layers.1.', 'norm0.', 'norm1.'))
        assert torch.equal(before[key], after[key]) == frozen_key or key.endswith('num_batches_tracked'), key


def test_frozen_stage_zero_freezes_only_the_stem():
    model = MLLA(SMALL_ARCH, frozen_stages=0).train()
    assert not model.patch_embed.training
    assert {n for n in _trainable_names(model) if n.startswith('patch_embed')} == set()
    assert any(n.startswith('layers.0') for n in _trainable_names(model))


def test_norm_eval_keeps_batchnorm_statistics():
    model = MLLA(SMALL_ARCH, norm_eval=True).train()
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert batchnorms and all(not m.training for m in batchnorms)
    assert model.layers[0].blocks[0].training  # the rest still trains (drop path active)
    stats = [m.running_mean.clone() for m in batchnorms]
    model(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(s, m.running_mean) for s, m in zip(stats, batchnorms))
    plain = MLLA(SMALL_ARCH).train()
    plain(torch.randn(2, 3, 64, 64))
    assert not torch.equal(plain.patch_embed.conv1.norm.running_mean, torch.zeros(8))


def _saved_activation_bytes(model, x):
    """Bytes autograd keeps for the backward pass: the activation memory of a training step."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    return total, out


def test_with_cp_gives_same_gradients_and_keeps_far_fewer_activations():
    torch.manual_seed(0)
    plain = MLLA(SMALL_ARCH, drop_path_rate=0.).train()
    checkpointed = MLLA(SMALL_ARCH, drop_path_rate=0., with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 96, 128)
    bytes_plain, out_plain = _saved_activation_bytes(plain, x)
    bytes_cp, out_cp = _saved_activation_bytes(checkpointed, x)
    projected_loss(out_plain).backward()
    projected_loss(out_cp).backward()
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        assert p.grad.abs().max() > 0, name
        assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), name
    # blocks keep only their inputs; the stem and patch merging still keep theirs
    assert bytes_cp < 0.5 * bytes_plain, (bytes_cp, bytes_plain)


def test_drop_path_rises_linearly_over_blocks():
    model = MLLA(SMALL_ARCH, drop_path_rate=0.4)
    rates = [block.drop_path.drop_prob if hasattr(block.drop_path, 'drop_prob') else 0.0
             for stage in model.layers for block in stage.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize('drop_prob,scale_by_keep', [(0.3, True), (0.5, False), (1.0, True)])
def test_drop_path_draws_what_the_official_codes_timm_draws(drop_prob, scale_by_keep):
    """The same masks as timm's DropPath (which the official code takes) for the same random state, in any shape;
    the identity in eval mode and at rate 0."""
    timm_layers = pytest.importorskip('timm.layers')
    from mlla_mm.models.layers import DropPath
    ours, timms = DropPath(drop_prob, scale_by_keep), timm_layers.DropPath(drop_prob, scale_by_keep)
    for shape in [(16, 7, 8), (16, 3, 4, 4)]:
        x = torch.randn(shape)
        torch.manual_seed(3)
        expected = timms(x)
        torch.manual_seed(3)
        assert torch.equal(ours(x), expected)
    assert 0 < int((expected.flatten(1) == 0).all(dim=1).sum()) <= 16
    x = torch.randn(4, 5)
    assert ours.eval()(x) is x and DropPath(0.).train()(x) is x


def test_trunc_normal_draws_what_the_official_codes_timm_draws():
    """The official init's truncated normal (timm's): the same values for the same seed, within its bounds."""
    timm_layers = pytest.importorskip('timm.layers')
    from mlla_mm.models.layers import trunc_normal_
    for std, a, b in [(.02, -2., 2.), (1., -0.5, 1.5)]:
        torch.manual_seed(7)
        expected = timm_layers.trunc_normal_(torch.empty(64, 48), std=std, a=a, b=b)
        torch.manual_seed(7)
        got = trunc_normal_(torch.empty(64, 48), std=std, a=a, b=b)
        assert torch.equal(got, expected)
        assert a <= float(got.min()) and float(got.max()) <= b and float(got.std()) > 0


def test_default_init_follows_the_official_scheme():
    model = MLLA(SMALL_ARCH)
    model.init_weights()
    linear = model.layers[0].blocks[0].in_proj
    assert torch.count_nonzero(linear.bias) == 0
    assert 0.005 < float(linear.weight.std()) < 0.03  # trunc_normal std 0.02
    assert torch.equal(model.norm0.weight, torch.ones(16))
