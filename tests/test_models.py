"""The model zoo and loader (simulator/models.py): built-ins, user factories,
TorchScript files, input helpers, and the one-line errors."""
import textwrap

import pytest
import torch
import torch.fx
from torch import nn

from simulator import models
from simulator.errors import JoulesimError
from simulator.models import (BUILTIN_MODELS, ModelSpec, check_inputs, load_model, make_inputs,
                              parse_shape)

# torch >= 2.9 marks torch.jit.script/trace/save as deprecated; they still work.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of all Conv2d and Linear layers for one forward pass."""
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m, inp, out):
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def assert_one_line_error(excinfo, *fragments):
    msg = str(excinfo.value)
    assert msg and "\n" not in msg, repr(msg)
    for frag in fragments:
        assert frag in msg, (frag, msg)
    return msg


# ---------------------------------------------------------------- built-ins

def test_registry_entries():
    assert set(BUILTIN_MODELS) == {"fashion_cnn", "resnet18", "mobilenet_v2", "bert_block",
                                   "tiny_bert", "minilm"}
    assert {n for n, s in BUILTIN_MODELS.items() if s.text} == {"tiny_bert", "minilm"}
    for name, spec in BUILTIN_MODELS.items():
        assert isinstance(spec, ModelSpec)
        assert callable(spec.factory)
        assert isinstance(spec.default_input_shape, tuple)
        assert spec.default_input_shape[0] == 1
        assert spec.description


@pytest.mark.parametrize("name,shape,out_shape", [
    ("fashion_cnn", None, (1, 10)),
    ("resnet18", (1, 3, 64, 64), (1, 1000)),
    ("mobilenet_v2", (1, 3, 64, 64), (1, 1000)),
    ("bert_block", None, (1, 128, 256)),
])
def test_builtin_forward(name, shape, out_shape):
    model, default = load_model(name)
    assert default == BUILTIN_MODELS[name].default_input_shape
    assert not model.training
    y = check_inputs(model, make_inputs(shape or default))
    assert tuple(y.shape) == out_shape
    assert torch.isfinite(y).all()


def test_builtins_are_deterministic_and_leave_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = BUILTIN_MODELS["bert_block"].factory()
    after = torch.rand(3)
    assert torch.equal(before, after)
    b = BUILTIN_MODELS["bert_block"].factory()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_fashion_cnn_macs_under_budget():
    model, shape = load_model("fashion_cnn")
    macs = count_macs(model, make_inputs(shape))
    assert 1_000_000 < macs <= 6_000_000, macs


def test_resnet18_structure_like_torchvision():
    model, _ = load_model("resnet18")
    names = dict(model.named_modules())
    for n in ["conv1", "bn1", "maxpool", "layer1.0.conv1", "layer1.1.bn2",
              "layer2.0.downsample.0", "layer4.1.conv2", "avgpool", "fc"]:
        assert n in names, n
    assert sum(p.numel() for p in model.parameters()) == 11_689_512
    assert names["fc"].out_features == 1000
    macs = count_macs(model, make_inputs((1, 3, 224, 224)))
    assert abs(macs - 1.814e9) / 1.814e9 < 0.01, macs


def test_mobilenet_v2_structure():
    model, _ = load_model("mobilenet_v2")
    assert sum(p.numel() for p in model.parameters()) == 3_504_872
    mods = list(model.modules())
    assert any(isinstance(m, nn.ReLU6) for m in mods)
    depthwise = [m for m in mods if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 17 and all(m.groups == m.in_channels for m in depthwise)
    assert sum(isinstance(m, models.InvertedResidual) and m.use_res_connect for m in mods) == 10


def test_bert_block_uses_matmul_attention():
    model, shape = load_model("bert_block")
    calls = []
    real = torch.matmul

    def spy(a, b, *args, **kw):
        calls.append((tuple(a.shape), tuple(b.shape)))
        return real(a, b, *args, **kw)

    torch.matmul = spy
    try:
        check_inputs(model, make_inputs(shape))
    finally:
        torch.matmul = real
    assert calls == [((1, 4, 128, 64), (1, 4, 64, 128)), ((1, 4, 128, 128), (1, 4, 128, 64))]
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 6
    assert sum(isinstance(m, nn.LayerNorm) for m in model.modules()) == 2
    assert any(isinstance(m, nn.GELU) for m in model.modules())
    # Batch and sequence length are free.
    assert tuple(check_inputs(model, make_inputs((2, 16, 256))).shape) == (2, 16, 256)


# ---------------------------------------------------------------- checkpoint

def test_fashion_cnn_loads_checkpoint(tmp_path, monkeypatch):
    trained = models.FashionCNN()
    with torch.no_grad():
        for p in trained.parameters():
            p.fill_(0.125)
    torch.save(trained.state_dict(), tmp_path / "fashion_cnn.pt")
    monkeypatch.setattr(models, "CHECKPOINT_DIR", tmp_path)
    model, _ = load_model("fashion_cnn")
    assert all(torch.all(p == 0.125) for p in model.parameters())

    # Without the file: random init again.
    monkeypatch.setattr(models, "CHECKPOINT_DIR", tmp_path / "nowhere")
    model, _ = load_model("fashion_cnn")
    assert not all(torch.all(p == 0.125) for p in model.parameters())


def test_fashion_cnn_bad_checkpoint(tmp_path, monkeypatch):
    torch.save({"bogus.weight": torch.zeros(3)}, tmp_path / "fashion_cnn.pt")
    monkeypatch.setattr(models, "CHECKPOINT_DIR", tmp_path)
    with pytest.raises(JoulesimError) as ei:
        load_model("fashion_cnn")
    assert_one_line_error(ei, "fashion_cnn.pt", "cannot load checkpoint")


# ---------------------------------------------------------------- user factories

def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_file_factory_with_attribute_shape(tmp_path):
    path = write(tmp_path, "mynet.py", """
        import torch.nn as nn
        def make():
            m = nn.Sequential(nn.Linear(8, 4), nn.ReLU())
            m.example_input_shape = (1, 8)
            return m
        def make_plain():
            return nn.Linear(8, 2).train()
    """)
    model, shape = load_model(f"{path}:make")
    assert isinstance(model, nn.Module) and not model.training
    assert shape == (1, 8)
    assert tuple(check_inputs(model, make_inputs(shape)).shape) == (1, 4)
    model, shape = load_model(f"{path}:make_plain")
    assert shape is None and not model.training


def test_file_factory_with_tuple_and_sibling_import(tmp_path):
    write(tmp_path, "helper_mod_for_joulesim_test.py", """
        WIDTH = 5
    """)
    path = write(tmp_path, "net2.py", """
        import torch.nn as nn
        from helper_mod_for_joulesim_test import WIDTH
        def build():
            return nn.Linear(WIDTH, 3), [2, WIDTH]
    """)
    model, shape = load_model(f"{path}:build")
    assert shape == (2, 5)
    assert tuple(check_inputs(model, make_inputs(shape)).shape) == (2, 3)


# ---------------------------------------------------------------- TorchScript

def test_torchscript_script_round_trip(tmp_path):
    model, shape = load_model("fashion_cnn")
    path = tmp_path / "fcnn.ts"
    torch.jit.save(torch.jit.script(model), str(path))
    loaded, loaded_shape = load_model(str(path))
    assert loaded_shape is None and not loaded.training
    x = make_inputs(shape)
    assert torch.allclose(check_inputs(loaded, x), check_inputs(model, x), atol=1e-5)


def test_torchscript_trace_round_trip(tmp_path):
    model, shape = load_model("bert_block")
    x = make_inputs(shape)
    path = tmp_path / "bert.pt"
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(model, x), str(path))
    loaded, loaded_shape = load_model(str(path))
    assert loaded_shape is None
    assert torch.allclose(check_inputs(loaded, x), check_inputs(model, x), atol=1e-5)


# ---------------------------------------------------------------- errors

def test_unknown_name_lists_builtins():
    with pytest.raises(JoulesimError) as ei:
        load_model("resnet50")
    assert_one_line_error(ei, "resnet50", *BUILTIN_MODELS)


@pytest.mark.parametrize("spec", ["missing_dir/model.pt", "nothere.pt", "nothere.py:make"])
def test_file_not_found(tmp_path, spec):
    with pytest.raises(JoulesimError) as ei:
        load_model(str(tmp_path / spec))
    assert_one_line_error(ei, "not found")


def test_py_without_factory_name(tmp_path):
    path = write(tmp_path, "m.py", "x = 1\n")
    with pytest.raises(JoulesimError) as ei:
        load_model(str(path))
    assert_one_line_error(ei, "factory")


def test_factory_missing(tmp_path):
    path = write(tmp_path, "m.py", """
        import torch.nn as nn
        def build():
            return nn.Linear(2, 2)
    """)
    with pytest.raises(JoulesimError) as ei:
        load_model(f"{path}:make")
    assert_one_line_error(ei, "no factory 'make'", "build")


def test_import_raises(tmp_path):
    path = write(tmp_path, "m.py", """
        raise ValueError("broken\\nover two lines")
    """)
    with pytest.raises(JoulesimError) as ei:
        load_model(f"{path}:make")
    assert_one_line_error(ei, "ValueError", "broken")


def test_import_syntax_error(tmp_path):
    path = write(tmp_path, "m.py", "def make(:\n")
    with pytest.raises(JoulesimError) as ei:
        load_model(f"{path}:make")
    assert_one_line_error(ei, "SyntaxError")


def test_factory_raises(tmp_path):
    path = write(tmp_path, "m.py", """
        def make():
            raise RuntimeError("no weights here")
    """)
    with pytest.raises(JoulesimError) as ei:
        load_model(f"{path}:make")
    assert_one_line_error(ei, "make()", "RuntimeError", "no weights here")


@pytest.mark.parametrize("body", [
    "def make():\n    return 42\n",
    "import torch\ndef make():\n    return torch.zeros(3)\n",
    "make = 7\n",
])
def test_factory_not_returning_module(tmp_path, body):
    path = write(tmp_path, "m.py", body)
    with pytest.raises(JoulesimError) as ei:
        load_model(f"{path}:make")
    assert_one_line_error(ei, "make")


def test_factory_bad_shape(tmp_path):
    path = write(tmp_path, "m.py", """
        import torch.nn as nn
        def make():
            return nn.Linear(2, 2), (1, -2)
    """)
    with pytest.raises(JoulesimError) as ei:
        load_model(f"{path}:make")
    assert_one_line_error(ei, "shape")


def test_bad_torchscript(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(JoulesimError) as ei:
        load_model(str(path))
    assert_one_line_error(ei, "TorchScript", "weights.pt")


def test_state_dict_file_is_not_a_model(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(JoulesimError) as ei:
        load_model(str(path))
    assert_one_line_error(ei, "not a whole model", "weights.pt")


def test_whole_saved_model_loads_and_torchscript_is_refused_by_the_simulator(tmp_path):
    from simulator.network import simulate

    model, shape = load_model("fashion_cnn")
    torch.save(model, tmp_path / "model.pt")
    loaded, _ = load_model(str(tmp_path / "model.pt"))
    x = make_inputs(shape)
    assert torch.equal(check_inputs(loaded, x), check_inputs(model, x))
    torch.jit.save(torch.jit.script(model), str(tmp_path / "m.ts"))
    scripted, _ = load_model(str(tmp_path / "m.ts"))
    with pytest.raises(JoulesimError) as ei:
        simulate(scripted, x, "edge_npu_16x16_int8")
    assert_one_line_error(ei, "TorchScript")


# ---------------------------------------------------------------- inputs

def test_parse_shape():
    assert parse_shape("1,3,224,224") == (1, 3, 224, 224)
    assert parse_shape(" 1, 128 ,256 ") == (1, 128, 256)
    assert parse_shape("(1,8)") == (1, 8)
    assert parse_shape("7") == (7,)


@pytest.mark.parametrize("text", ["", "1,,3", "1,a,3", "1,0,3", "1,-3", "1.5,2", "1x3x4", ","])
def test_parse_shape_errors(text):
    with pytest.raises(JoulesimError) as ei:
        parse_shape(text)
    assert_one_line_error(ei, "shape")


def test_make_inputs_deterministic():
    a = make_inputs((2, 3, 4), seed=5)
    assert a.shape == (2, 3, 4) and a.dtype == torch.float32
    assert torch.equal(a, make_inputs([2, 3, 4], seed=5))
    assert not torch.equal(a, make_inputs((2, 3, 4), seed=6))
    big = make_inputs((100_000,), seed=0)
    assert abs(big.mean().item()) < 0.02 and abs(big.std().item() - 1) < 0.02
    with pytest.raises(JoulesimError):
        make_inputs((1, 0))


def test_check_inputs_rejects_wrong_shape():
    model, _ = load_model("fashion_cnn")
    with pytest.raises(JoulesimError) as ei:
        check_inputs(model, make_inputs((1, 3, 28, 28)))
    assert_one_line_error(ei, "input shape (1, 3, 28, 28) rejected by the model: ")


def test_check_inputs_rejects_wrong_shape_torchscript(tmp_path):
    model, _ = load_model("bert_block")
    path = tmp_path / "b.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    loaded, _ = load_model(str(path))
    with pytest.raises(JoulesimError) as ei:
        check_inputs(loaded, make_inputs((1, 16, 100)))
    assert_one_line_error(ei, "input shape (1, 16, 100) rejected by the model: ")


@pytest.mark.parametrize("name", sorted(n for n, s in BUILTIN_MODELS.items() if not s.text))
def test_builtins_are_fx_traceable(name):
    """No Python control flow on tensor values: graph capture (torch.fx) works."""
    model, shape = load_model(name)
    if name in ("resnet18", "mobilenet_v2"):
        shape = (1, 3, 64, 64)
    x = make_inputs(shape)
    gm = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        assert torch.allclose(gm(x), model(x), atol=1e-5)
