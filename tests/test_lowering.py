"""Lowered GEMMs reproduce F.conv2d / F.linear / matmul exactly on integer tensors."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from simulator.capture import capture
from simulator.lowering import conv_to_gemms, lower


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
    for i, shape in enumerate([(64, 3, 3, 3), (5, 70), (3, 1, 1, 1), (130, 200)] * 6):
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
