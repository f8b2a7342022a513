"""Capture: the real tensors of one forward pass, op by op.

Owns the record of what a PyTorch model computes: every MAC op (conv2d,
linear, matmul/bmm, scaled-dot-product attention) with its real operands and
parameters, every element-wise/reduction op that runs on the vector unit
(with its element count), the ops that cost nothing (views, reshapes), and
the ops the simulator cannot price ("unmodeled", never dropped silently).
BatchNorm applied directly to a conv's output is folded into that conv's
weights and bias, as deployment does.

Interception is a `torch.overrides.TorchFunctionMode` (every torch function
call of the forward pass, module or functional), plus module hooks that
name each op after the innermost module running it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from numba import njit, prange
from torch.overrides import TorchFunctionMode

from simulator.errors import JoulesimError

# vector-unit operations per output element (first-order estimates: one ALU
# op per compare/add/multiply; transcendental functions as a few ops)
VECTOR_OPS_PER_ELEMENT = {
    "relu": 1, "relu_": 1, "relu6": 2, "hardtanh": 2, "hardtanh_": 2, "leaky_relu": 2,
    "gelu": 8, "silu": 4, "sigmoid": 4, "tanh": 4, "hardswish": 3,
    "add": 1, "add_": 1, "__add__": 1, "__iadd__": 1, "__radd__": 1, "sub": 1, "__sub__": 1,
    "mul": 1, "mul_": 1, "__mul__": 1, "__rmul__": 1, "div": 1, "__truediv__": 1,
    "batch_norm": 2, "layer_norm": 5, "group_norm": 5, "softmax": 5, "log_softmax": 6,
    "max_pool2d": None, "avg_pool2d": None, "adaptive_avg_pool2d": None,
    "adaptive_max_pool2d": None, "mean": None, "sum": None,
    "clamp": 2, "normalize": 3,      # L2 normalise: square-accumulate, then divide
}
# data movement or bookkeeping only: no arithmetic
FREE_OPS = {
    "dim", "size", "numel", "view", "reshape", "flatten", "permute", "transpose", "t",
    "contiguous", "unsqueeze", "squeeze", "expand", "expand_as", "chunk", "split", "cat",
    "stack", "__getitem__", "__get__", "to", "float", "half", "detach", "clone", "dropout",
    "identity", "type_as", "split_with_sizes", "unbind", "narrow", "select", "masked_fill",
    "__len__", "__iter__", "__contains__", "is_floating_point", "requires_grad_", "zeros",
    "ones", "zeros_like", "ones_like", "arange", "full", "tensor", "as_tensor", "randn",
    "rand", "empty", "new_zeros", "new_ones", "new_empty", "item", "tolist", "__format__",
    "__repr__", "__bool__", "__eq__", "eq", "ne", "__ne__", "__setitem__", "copy_",
    "flip", "roll", "repeat", "pad", "__hash__", "_has_compatible_shallow_copy_type",
    "unflatten", "movedim", "moveaxis", "swapaxes", "view_as", "reshape_as", "mT", "T",
}
MAC_OPS = {"conv2d", "linear", "matmul", "bmm", "scaled_dot_product_attention", "__matmul__"}


@dataclass
class MacOp:
    """One MAC op with its real operands (float tensors, detached)."""

    name: str
    kind: str                  # conv2d | linear | matmul
    x: torch.Tensor            # input activations
    w: torch.Tensor            # weight (conv: Cout x Cin/g x kh x kw; linear: out x in) or 2nd operand
    bias: torch.Tensor | None
    params: dict = field(default_factory=dict)   # stride, padding, dilation, groups
    out_shape: tuple = ()
    macs: int = 0
    folded_bn: bool = False
    weight_is_param: bool = True    # w is a model parameter (static), not an activation
    seq: int = -1                   # position in execution order


@dataclass
class VectorOp:
    name: str
    kind: str
    elements: int              # output elements
    ops: int                   # vector-unit operations
    seq: int = -1


@dataclass
class UnmodeledOp:
    name: str
    kind: str
    elements: int              # output elements, the only size we know
    seq: int = -1


@dataclass
class Capture:
    mac_ops: list
    vector_ops: list
    unmodeled: list
    output: torch.Tensor | None = None

    @property
    def total_macs(self) -> int:
        return sum(op.macs for op in self.mac_ops)


def _numel(out) -> int:
    if isinstance(out, torch.Tensor):
        return out.numel()
    if isinstance(out, (tuple, list)):
        return sum(_numel(o) for o in out)
    return 0


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class _Recorder(TorchFunctionMode):
    def __init__(self, module_stack):
        super().__init__()
        self.stack = module_stack
        self.mac_ops, self.vector_ops, self.unmodeled = [], [], []
        self.conv_by_output = {}      # id(conv output) -> MacOp, for BatchNorm folding
        self.live_weights = []        # ops whose w is still the live parameter: cloned at the end
        self.counter = {}
        self.seq = 0

    def _name(self, kind):
        base = self.stack[-1] if self.stack else "model"
        key = (base, kind)
        self.counter[key] = self.counter.get(key, 0) + 1
        n = self.counter[key]
        return f"{base}.{kind}" if n == 1 else f"{base}.{kind}#{n}"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        fname = getattr(func, "__name__", str(func))
        if fname in FREE_OPS:
            return out
        sizes = (len(self.mac_ops), len(self.vector_ops), len(self.unmodeled))
        try:
            self._record(fname, args, kwargs, out)
        except JoulesimError:
            raise
        except Exception:   # a call shape we do not parse: keep it visible
            self.unmodeled.append(UnmodeledOp(self._name(fname), fname, _numel(out)))
        for lst, before in zip((self.mac_ops, self.vector_ops, self.unmodeled), sizes):
            for op in lst[before:]:
                op.seq = self.seq
                self.seq += 1
        return out

    def _record(self, fname, args, kw, out):
        arg = lambda i, key, default=None: args[i] if len(args) > i else kw.get(key, default)  # noqa: E731
        if fname == "conv2d":
            x, w, b = arg(0, "input"), arg(1, "weight"), arg(2, "bias")
            groups = int(arg(6, "groups", 1))
            params = dict(stride=_pair(arg(3, "stride", 1)), padding=arg(4, "padding", 0),
                          dilation=_pair(arg(5, "dilation", 1)), groups=groups)
            if isinstance(params["padding"], str):
                raise JoulesimError(f"conv2d padding={params['padding']!r} is not supported; "
                                    "give explicit padding")
            params["padding"] = _pair(params["padding"])
            macs = out.numel() * (w.shape[1] * w.shape[2] * w.shape[3])
            op = MacOp(self._name("conv2d"), "conv2d", x.detach().clone(), w.detach(),
                       None if b is None else b.detach().clone(), params, tuple(out.shape), macs)
            self.mac_ops.append(op)
            self.live_weights.append(op)   # a folded BatchNorm replaces w: no copy needed then
            self.conv_by_output[id(out)] = (op, out)
        elif fname == "linear":
            x, w, b = arg(0, "input"), arg(1, "weight"), arg(2, "bias")
            macs = out.numel() * w.shape[1]
            self.mac_ops.append(MacOp(self._name("linear"), "linear", x.detach().clone(),
                                      w.detach().clone(), None if b is None else b.detach().clone(),
                                      {}, tuple(out.shape), macs))
        elif fname in ("matmul", "bmm", "__matmul__"):
            a, b = args[0], args[1]
            self.mac_ops.append(MacOp(self._name("matmul"), "matmul", a.detach().clone(),
                                      b.detach().clone(), None, {}, tuple(out.shape),
                                      out.numel() * a.shape[-1], weight_is_param=False))
        elif fname == "scaled_dot_product_attention":
            self._record_sdpa(args, kw, out)
        elif fname == "batch_norm" and id(arg(0, "input")) in self.conv_by_output \
                and not kw.get("training", len(args) > 5 and args[5]):
            op, conv_out = self.conv_by_output.pop(id(arg(0, "input")))
            self._fold_bn(op, arg(1, "running_mean"), arg(2, "running_var"), arg(3, "weight"),
                          arg(4, "bias"), float(arg(7, "eps", 1e-5)))
        elif fname in VECTOR_OPS_PER_ELEMENT:
            n = _numel(out)
            per = VECTOR_OPS_PER_ELEMENT[fname]
            if per is None:   # reductions: one op per input element read
                src = args[0] if args else kw.get("input")
                ops = src.numel() if isinstance(src, torch.Tensor) else n
            else:
                ops = n * per
            self.vector_ops.append(VectorOp(self._name(fname), fname, n, int(ops)))
        else:
            self.unmodeled.append(UnmodeledOp(self._name(fname), fname, _numel(out)))

    def _record_sdpa(self, args, kw, out):
        q, k, v = args[0], args[1], args[2]
        scale = kw.get("scale") or 1.0 / math.sqrt(q.shape[-1])
        scores = (q @ k.transpose(-2, -1)) * scale
        mask = kw.get("attn_mask", args[3] if len(args) > 3 else None)
        if kw.get("is_causal", False):
            L, S = scores.shape[-2:]
            causal = torch.ones(L, S, dtype=torch.bool).tril()
            scores = scores.masked_fill(~causal, float("-inf"))
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool \
                else scores + mask
        probs = torch.softmax(scores, dim=-1)
        self.mac_ops.append(MacOp(self._name("attn_scores"), "matmul", q.detach().clone(),
                                  k.transpose(-2, -1).detach().clone(), None, {},
                                  tuple(scores.shape), scores.numel() * q.shape[-1],
                                  weight_is_param=False))
        self.vector_ops.append(VectorOp(self._name("softmax"), "softmax", probs.numel(),
                                        5 * probs.numel()))
        self.mac_ops.append(MacOp(self._name("attn_context"), "matmul", probs.detach().clone(),
                                  v.detach().clone(), None, {}, tuple(out.shape),
                                  out.numel() * probs.shape[-1], weight_is_param=False))

    @staticmethod
    def _fold_bn(op, mean, var, gamma, beta, eps):
        scale = torch.rsqrt(var + eps)
        if gamma is not None:
            scale = scale * gamma
        op.w = op.w * scale.reshape(-1, 1, 1, 1)      # a new tensor: no longer the live weight
        bias = op.bias if op.bias is not None else torch.zeros_like(mean)
        op.bias = (bias - mean) * scale + (beta if beta is not None else 0)
        op.folded_bn = True


@njit(cache=True)
def _finite_serial(flat):
    for v in flat:
        if not np.isfinite(v):
            return False
    return True


@njit(parallel=True, cache=True)
def _finite_parallel(flat):
    bad = 0
    for i in prange(flat.shape[0]):
        if not np.isfinite(flat[i]):
            bad += 1
    return bad == 0


_PARALLEL_FROM = 1 << 20     # elements: below this, starting the threads costs more than the check


def _all_finite(t: torch.Tensor) -> bool:
    """No NaN or Inf in `t`: one pass of a Numba loop for float32/float64 CPU tensors."""
    if t.dtype in (torch.float32, torch.float64) and t.device.type == "cpu" and t.numel():
        flat = t.detach().contiguous().reshape(-1).numpy()
        return bool(_finite_parallel(flat) if flat.size >= _PARALLEL_FROM else _finite_serial(flat))
    return bool(torch.isfinite(t).all())


def capture(model: torch.nn.Module, inputs) -> Capture:
    """Run `model(inputs)` once in eval mode under no_grad and record every op."""
    if isinstance(model, torch.jit.ScriptModule):
        raise JoulesimError("a TorchScript model cannot be simulated: its ops run inside the "
                            "TorchScript interpreter, out of the recorder's sight; give the eager "
                            "model (path/to/file.py:factory, or a torch.save(model) file)")
    if not isinstance(inputs, (tuple, list)):
        inputs = (inputs,)
    for t in inputs:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not _all_finite(t):
            raise JoulesimError("the inputs contain NaN or Inf")
    stack: list[str] = []
    names = {m: n for n, m in model.named_modules()}
    handles = []
    def enter(mod, _inp):
        stack.append(names.get(mod) or "model")

    def leave(mod, _inp, _out):
        stack.pop()     # returns None: the module's output is left alone

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(enter))
        handles.append(m.register_forward_hook(leave))
    was_training = model.training
    model.eval()
    rec = _Recorder(stack)
    try:
        with torch.no_grad(), rec:
            out = model(*inputs)
    except JoulesimError:
        raise
    except Exception as exc:
        shapes = ", ".join(str(tuple(t.shape)) for t in inputs if isinstance(t, torch.Tensor))
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JoulesimError(f"the model rejected input shape {shapes}: {msg}") from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for op in rec.live_weights:    # snapshot the weights no BatchNorm replaced
        if not op.folded_bn:
            op.w = op.w.clone()
    # a BatchNorm that was not folded (not directly after a conv) runs on the vector unit
    return Capture(rec.mac_ops, rec.vector_ops, rec.unmodeled, out)
