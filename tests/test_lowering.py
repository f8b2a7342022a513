"""Lowered GEMMs reproduce F.conv2d / F.linear / matmul exactly on integer tensors."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from simulator.capture import capture
from simulator.lowering import ConvIfmap, conv_to_gemms, lower


def _ints(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-128, 128, shape, generator=g).double()


@pytest.mark.parametrize("stride,padding,dilation,groups,cin,cout", [
    (1, 0, 1, 1, 3, 5), (2, 1, 1, 1, 4, 6), (1, 2, 2, 1, 3, 4), (2, 1, 1, 2, 4, 6),
    (1, 1, 1, 8, 8, 8), (2, 1, 1, 8, 8, 16)])          # last two: depthwise, x2 multiplier
def test_conv_gemm_equals_conv2d(stride, padding, dilation, groups, cin, cout):
    x = _ints(2, cin, 9, 11)
    w = _ints(cout, cin // groups, 3, 3, seed=1)
    params = dict(stride=(stride, stride), padding=(padding, padding),
                  dilation=(dilation, dilation), groups=groups)
    ref = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    n, _, oh, ow = ref.shape
    cout_g = cout // groups
    for g, A, B in conv_to_gemms(x, w, params):
        got = torch.from_numpy(A @ B).reshape(n, oh, ow, cout_g).permute(0, 3, 1, 2)
        assert torch.equal(got, ref[:, g * cout_g:(g + 1) * cout_g])


def test_captured_conv_linear_matmul_lower_exactly():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
            self.fc = nn.Linear(4 * 4 * 4, 6, bias=False)

        def forward(self, x):
            y = self.conv(x).flatten(1)
            z = self.fc(y)
            return torch.matmul(z[:, :, None], z[:, None, :])

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        net.conv.weight.copy_(torch.randint(-127, 128, net.conv.weight.shape).float())
        net.fc.weight.copy_(torch.randint(-127, 128, net.fc.weight.shape).float())
        net.conv.weight[:, 0, 0, 0] = 127     # every channel's max |w| is 127: scale 1
        net.fc.weight[:, 0] = 127
    x = torch.randint(-127, 128, (2, 3, 8, 8)).float()
    x[0, 0, 0, 0] = 127
    cap = capture(net, x)
    assert [op.kind for op in cap.mac_ops] == ["conv2d", "linear", "matmul"]
    conv, fc, mm = cap.mac_ops
    # int8 quantization keeps integers whose max |value| is 127 unchanged
    fc.x = torch.round(fc.x / fc.x.abs().max() * 127)   # re-quantized activations of fc
    for op in (conv, fc):
        gemms = lower(op, "int8")
        A, B = torch.tensor(gemms[0].A, dtype=torch.float64), torch.tensor(gemms[0].B, dtype=torch.float64)
        if op.kind == "conv2d":
            ref = F.conv2d(op.x.double(), op.w.double(), stride=2, padding=1)
            assert torch.equal((A @ B).reshape(2, 4, 4, 4).permute(0, 3, 1, 2), ref)
        else:
            assert torch.equal(A @ B, F.linear(op.x.double(), op.w.double()))
    gemms = lower(mm, "fp32")
    assert len(gemms) == 2 and gemms[0].A.shape == (6, 1) and gemms[0].B.shape == (1, 6)
    assert cap.total_macs == conv.macs + fc.macs + mm.macs


@pytest.mark.parametrize("fmt", ["int8", "int16"])
def test_fast_quantizer_equals_torch_reference(fmt):
    """The Numba quantizer that `lower` runs gives the integers of the torch
    reference (`quantize_tensor`, `quantize_per_channel`), halves included."""
    from simulator.lowering import _np, _quantize_np, quantize_per_channel, quantize_tensor
    g = torch.Generator().manual_seed(0)
    for i, shape in enumerate([(64, 3, 3, 3), (5, 70), (3, 1, 1, 1), (130, 200), (129, 64, 1, 1)] * 6):
        x = torch.randn(shape, generator=g) * 10.0 ** (i % 5 - 2)
        if i % 3 == 0:
            x = torch.round(x * 4) / 4          # many values exactly halfway after scaling
        if i % 4 == 1:
            x[0] = 0                            # an all-zero channel: scale 1
        per_tensor = _np(quantize_tensor(x, fmt), fmt)
        per_channel = _np(quantize_per_channel(x, fmt), fmt)
        assert np.array_equal(_quantize_np(x, fmt, per_channel=False), per_tensor)
        assert np.array_equal(_quantize_np(x, fmt, per_channel=True), per_channel)
        assert np.array_equal(_quantize_np(x, fmt, per_channel=True, transposed=True),
                              per_channel.reshape(shape[0], -1).T)


@pytest.mark.parametrize("fmt", ["int8", "int16", "fp16"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_lowering_names_a_weight_or_input_with_nan_or_inf(fmt, bad):
    """NaN/Inf in a weight (BatchNorm folded in or not) or in a layer's input is one
    JoulesimError naming the layer, from the quantizer's max-|x| pass."""
    from simulator.errors import JoulesimError
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 4 * 4, 5)).eval()
    x = torch.randn(1, 3, 6, 6)
    cases = [("0.conv2d", "weight", lambda: net[0].weight.data.__setitem__((2, 1, 0, 0), bad)),
             ("0.conv2d", "weight", lambda: net[1].weight.data.__setitem__(3, bad)),
             ("3.linear", "weight", lambda: net[3].weight.data.__setitem__((4, 7), bad)),
             ("3.linear", "input", lambda: net[1].bias.data.__setitem__(0, bad))]
    for layer, what, poison in cases:
        clean = {k: v.clone() for k, v in net.state_dict().items()}
        poison()
        ops = {op.name: op for op in capture(net, x).mac_ops}
        if layer == "3.linear":
            lower(ops["0.conv2d"], fmt)      # the conv before it is clean: no error
        with pytest.raises(JoulesimError, match=f"the {what} of layer {layer}.*contains NaN or Inf"):
            lower(ops[layer], fmt)
        net.load_state_dict(clean)


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
@pytest.mark.parametrize("shape,kernel,stride,padding,dilation", [
    ((2, 3, 9, 11), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((2, 4, 10, 9), (3, 3), (2, 2), (1, 1), (1, 1)),
    ((1, 2, 12, 13), (3, 2), (2, 3), (2, 0), (2, 3)),
    ((3, 2, 7, 7), (1, 1), (1, 1), (0, 0), (1, 1)),
    ((1, 5, 5, 1), (3, 1), (1, 1), (1, 0), (1, 1)),
    ((2, 3, 8, 8), (7, 7), (2, 2), (3, 3), (1, 1))])
def test_unbuilt_im2col_streams_and_gathers_like_the_built_matrix(dtype, shape, kernel, stride,
                                                                  padding, dilation):
    """`ConvIfmap` (a conv's im2col not built) equals `F.unfold` of the input when built,
    gathers its rows and fold segments, and counts the same stream toggles as
    `toggles.stream_toggles` on the unfolded matrix (prefix sums over input rows vs
    row-by-row XORs), for a whole conv and one group."""
    from simulator import toggles as tk
    from simulator.formats import BITS_DTYPE

    rng = np.random.default_rng(0)
    x = rng.integers(-100, 100, shape).astype(dtype)
    bits = BITS_DTYPE[8 * np.dtype(dtype).itemsize]
    params = dict(stride=stride, padding=padding, dilation=dilation)
    for c0, cg in ((0, shape[1]), (1, 1)):
        cols = F.unfold(torch.from_numpy(x[:, c0:c0 + cg]).double(), kernel, dilation=dilation,
                        padding=padding, stride=stride)                  # (N, K, L)
        A = cols.transpose(1, 2).reshape(-1, cols.shape[1]).numpy().astype(dtype)
        lazy = ConvIfmap(x, *kernel, params, c0, cg)
        assert lazy.shape == A.shape
        assert np.array_equal(lazy.materialize(), A)
        per_chunk = np.zeros((3, A.shape[1]), np.int64)
        tk.stream_toggles(A.view(bits), per_chunk)
        assert lazy.stream_toggles(bits) == per_chunk.sum()
        rows = rng.integers(0, A.shape[0], 9)
        assert np.array_equal(lazy.rows(rows), A[rows])
        k0s = rng.integers(0, A.shape[1], 9)
        rows[0] = -1
        seg = lazy.segments(rows, k0s, 4)
        padded = np.concatenate([A, np.zeros((A.shape[0], 4), A.dtype)], axis=1)
        ref = np.stack([padded[m, k:k + 4] if m >= 0 else np.zeros(4, A.dtype)
                        for m, k in zip(rows, k0s)])
        assert np.array_equal(seg, ref)


@pytest.mark.parametrize("fmt,rows,cols", [("int8", 16, 16), ("int16", 8, 12)])
def test_sampled_mode_on_an_unbuilt_im2col_equals_it_on_the_built_one(fmt, rows, cols):
    """Sampled dense weight-stationary simulation of a conv GEMM gives the same
    result from the unbuilt im2col (stream toggles from the input, sampled rows
    gathered) as from the built matrix, partial folds in K and N included."""
    from simulator.gemm import simulate_gemm
    from conftest import make_config

    rng = np.random.default_rng(1)
    dtype = np.int8 if fmt == "int8" else np.int16
    x = rng.integers(-128, 128, (2, 6, 12, 12)).astype(dtype)
    B = rng.integers(-128, 128, (6 * 9, 40)).astype(dtype)            # K = 54, N = 40
    B[rng.random(B.shape) < 0.3] = 0
    lazy = ConvIfmap(x, 3, 3, dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1)), 0, 6)
    cfg = make_config(array={"rows": rows, "cols": cols, "operand_format": fmt})
    for seed in (0, 1):
        a = simulate_gemm(lazy, B, cfg, sample_error=0.02, seed=seed)
        b = simulate_gemm(lazy.materialize(), B, cfg, sample_error=0.02, seed=seed)
        assert a.mode == "sampled"
        assert a.toggles == b.toggles and a.energy_pj == b.energy_pj
