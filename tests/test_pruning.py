"""Energy-aware pruning: the simulator decides, structure stays consistent,
runs resume exactly, results reload without the pruning package."""
import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from conftest import BASE_CONFIG, make_config, one_line_error, run_cli
from prune_helpers import mlp, synthetic_task, trained
from prune_models import TinyResidual
from pruning.candidates import BY_NAME, Candidate, Context
from pruning.importance import CalibrationStats, calibrate, channel_scores, weight_scores
from pruning.loop import EnergyAwarePruner
from pruning.results import stop_line
from pruning.structure import channel_prunable_layers, droppable_blocks
from pruning.training import FinetuneSettings, train
from simulator.errors import JoulesimError

MASK_GRANULARITIES = "unstructured,nm,block"


@pytest.fixture(scope="module")
def task():
    return synthetic_task()


@pytest.fixture(scope="module")
def dense_mlp(task):
    return trained(mlp(), task)


def _pruner(model, cfg, task, **kw):
    args = dict(evaluate=task.evaluate, probe=task.probe, finetune=task.finetune,
                min_saving=0.02, energy_target=0.5, max_steps=1)
    args.update(kw)
    return EnergyAwarePruner(copy.deepcopy(model), cfg, task.val_x[:64], **args)


def test_hardware_decides_the_granularity(dense_mlp, task):
    """Same model, same candidates; only the config changes. On a 2:4 array only N:M
    saves energy, on a zero-skipping array only whole zero tiles do, on a dense array
    nothing mask-based does."""
    picked = {}
    for name, sparsity in (("nm", {"structured": "2:4"}), ("skip", {"zero_skipping": True})):
        res = _pruner(dense_mlp, make_config(sparsity=sparsity), task,
                      granularity=MASK_GRANULARITIES).run()
        step = res.history.iloc[0]
        picked[name] = step["granularity"]
        admissible = res.candidates[res.candidates["admissible"]]
        assert set(admissible["granularity"]) == {step["granularity"]}
        assert step["saving_uj"] > 0.02 * res.summary["energy_before_uj"]
        assert "runner-up" in step["why"]
    assert picked == {"nm": "nm", "skip": "block"}

    dense = _pruner(dense_mlp, make_config(), task, granularity=MASK_GRANULARITIES).run()
    assert dense.history.empty and "no candidate saves" in dense.summary["stop_reason"]
    assert torch.equal(dense.model[1].weight, dense_mlp[1].weight)


def test_zero_gating_credits_unstructured_sparsity(dense_mlp, task):
    """Unstructured zeros save more on the zero-gating array than on the dense one."""
    cand = Candidate("1", "unstructured", 0.75, "sparsity 75%")
    ctx = Context(4, 4, (2, 4), "l1", CalibrationStats(), task.val_x[:64])
    savings = {}
    for name, cfg in (("dense", make_config()), ("gating", make_config(sparsity={"zero_gating": True}))):
        p = _pruner(dense_mlp, cfg, task)
        before = p.meter.measure(dense_mlp).energy_uj
        m = copy.deepcopy(dense_mlp)
        cand.apply(m, {}, ctx)
        savings[name] = before - p.meter.measure(m).energy_uj
    assert savings["gating"] > 1.5 * savings["dense"] > 0


def test_masks_nm_and_tiles_have_their_shape(dense_mlp):
    ctx = Context(4, 4, (2, 4), "l1", CalibrationStats(), torch.zeros(1, 64))
    m, masks = copy.deepcopy(dense_mlp), {}
    BY_NAME["nm"].apply(Candidate("1", "nm", 0.5, "2:4"), m, masks, ctx)
    groups = (m[1].weight.reshape(32, -1, 4) != 0).sum(-1)
    assert int(groups.max()) == 2 and masks["1.weight"].shape == m[1].weight.shape
    m = copy.deepcopy(dense_mlp)
    BY_NAME["block"].apply(Candidate("1", "block", 0.5, "64/128 tiles of 4x4"), m, {}, ctx)
    tiles = (m[1].weight.T != 0).reshape(16, 4, 8, 4).any(3).any(1)      # K tiles x N tiles
    assert int(tiles.sum()) == 64
    dense_tiles = m[1].weight.T.reshape(16, 4, 8, 4).permute(0, 2, 1, 3)[tiles]
    assert bool((dense_tiles != 0).all())                               # kept tiles untouched


def test_masks_survive_finetuning(dense_mlp, task):
    ctx = Context(4, 4, (2, 4), "l1", CalibrationStats(), task.val_x[:64])
    m, masks = copy.deepcopy(dense_mlp), {}
    BY_NAME["unstructured"].apply(Candidate("1", "unstructured", 0.8, "sparsity 80%"), m, masks, ctx)
    zeros = m[1].weight == 0
    train(m, task.train_x, task.train_y, FinetuneSettings(epochs=1, lr=1e-2), masks=masks)
    assert bool((m[1].weight[zeros] == 0).all()) and abs(float(zeros.float().mean()) - 0.8) < 0.01


@pytest.mark.parametrize("criterion", ["l1", "l2", "taylor", "activation"])
def test_importance_criteria_rank_every_weight_and_channel(dense_mlp, task, criterion):
    x, y = task.calibration()
    stats = calibrate(dense_mlp, x, y, criterion)
    w = weight_scores("1", dense_mlp[1], criterion, stats)
    c = channel_scores("1", dense_mlp[1], criterion, stats)
    assert w.shape == dense_mlp[1].weight.shape and c.shape == (32,)
    assert bool((w >= 0).all()) and bool(torch.isfinite(c).all())


def test_structural_pruning_keeps_a_residual_model_runnable(tmp_path):
    torch.manual_seed(0)
    model = TinyResidual().eval()
    x = torch.randn(2, 1, 8, 8)
    shape = model(x).shape
    layers = channel_prunable_layers(model, x)
    assert "head.2" not in layers and "blocks.0.conv2" in layers
    ctx = Context(4, 4, (2, 4), "l1", CalibrationStats(), x, frozenset(layers),
                  tuple(droppable_blocks(model, x)))
    assert "blocks.1" in ctx.blocks
    masks = {"blocks.1.conv1.weight": torch.ones(8, 8, 3, 3)}
    BY_NAME["channel"].apply(Candidate("blocks.0.conv2", "channel", 0.5, "8->4", keep=4), model, masks, ctx)
    # the residual add couples the stem, both blocks' outputs and the head's input
    assert model.stem[0].out_channels == 4 and model.blocks[1].conv2.out_channels == 4
    assert model.head[2].in_features == 4 and masks["blocks.1.conv1.weight"].shape == (8, 4, 3, 3)
    BY_NAME["depth"].apply(Candidate("blocks.1", "depth", 1.0, "block dropped"), model, masks, ctx)
    assert isinstance(model.blocks[1], torch.nn.Identity) and "blocks.1.conv1.weight" not in masks
    out = model(x)
    assert out.shape == shape

    path = tmp_path / "model.pt"
    torch.save(model, path)
    torch.save(x, tmp_path / "x.pt")
    torch.save(out, tmp_path / "out.pt")
    code = ("import sys, torch; sys.modules['pruning'] = None; sys.modules['torch_pruning'] = None\n"
            f"sys.path.insert(0, {str(tmp_path.parent)!r}); sys.path.insert(0, 'tests')\n"
            f"m = torch.load({str(path)!r}, weights_only=False).eval()\n"
            f"x = torch.load({str(tmp_path / 'x.pt')!r}); ref = torch.load({str(tmp_path / 'out.pt')!r})\n"
            "print(torch.equal(m(x), ref))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr


def _resumable(task, model, out_dir, **kw):
    return _pruner(model, make_config(), task, granularity="channel,unstructured", energy_target=0.05,
                   max_steps=3, min_saving=0.005, out_dir=out_dir, final_finetune=task.final_finetune,
                   **kw)


def test_resume_ends_where_an_uninterrupted_run_ends(dense_mlp, task, tmp_path):
    whole = _resumable(task, dense_mlp, tmp_path / "whole").run()

    class Stop(Exception):
        pass

    def kill_after_first(step, row):
        if step == 1:
            raise Stop

    with pytest.raises(Stop):
        _resumable(task, dense_mlp, tmp_path / "cut", on_step=kill_after_first).run()
    resumed = _resumable(task, dense_mlp, tmp_path / "cut", resume=True).run()
    assert len(whole.history) >= 2
    cols = ["step", "layer", "granularity", "detail", "accepted", "energy_after_uj", "val_acc_after"]
    assert whole.history[cols].equals(resumed.history[cols])
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_result_files_and_reload(dense_mlp, task, tmp_path):
    res = _pruner(dense_mlp, make_config(sparsity={"structured": "2:4"}), task,
                  granularity=MASK_GRANULARITIES).run()
    out = res.save(tmp_path / "out")
    for name in ("model.pt", "report.csv", "history.csv", "candidates.csv", "summary.json",
                 "trajectory.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["energy_after_uj"] < summary["energy_before_uj"]
    reloaded = torch.load(out / "model.pt", weights_only=False)
    assert torch.equal(reloaded(task.val_x[:8]), res.model(task.val_x[:8]))
    groups = (reloaded[1].weight.reshape(32, -1, 4) != 0).sum(-1)
    assert int(groups.max()) <= 2          # the N:M mask is folded into the saved weights


def test_final_finetune_runs_once_on_the_finished_model_keeping_its_masks(dense_mlp, task):
    seen = []

    def final(model, masks, seed):
        seen.append({k: v.clone() for k, v in masks.items()})
        task.final_finetune(model, masks, seed)

    res = _pruner(dense_mlp, make_config(sparsity={"structured": "2:4"}), task, granularity="nm",
                  final_finetune=final).run()
    assert res.summary["steps_accepted"] == 1 and len(seen) == 1
    assert res.summary["val_acc_before_final_finetune"] is not None
    (name, mask), = seen[0].items()
    layer = res.model.get_submodule(name.rpartition(".")[0])
    assert torch.equal(layer.weight != 0, mask.bool() & (layer.weight != 0))   # still masked
    assert float(mask.mean()) == 0.5
    # nothing pruned (no candidate saves enough): no final fine-tune, the model is the dense one
    seen.clear()
    res = _pruner(dense_mlp, make_config(), task, granularity="nm", min_saving=0.9,
                  final_finetune=final).run()
    assert res.summary["steps_accepted"] == 0 and not seen


class _RecoveringTask:
    """Accuracy falls by half the fraction of weights pruned since the last final
    fine-tune, and the final fine-tune wins back up to `gives_back` of what is lost (by
    default all of it: the budget a stage spends, the next one gets again)."""

    def __init__(self, model, gives_back=1.0):
        self.total = self.base = self.kept(model)
        self.gives_back, self.lost = gives_back, 0.0
        self.finals = []

    @staticmethod
    def kept(model):
        return sum(int((m.weight != 0).sum()) for m in model.modules() if isinstance(m, torch.nn.Linear))

    def evaluate(self, model):
        return 1.0 - self.lost - 0.5 * (self.base - self.kept(model)) / self.total

    def finetune(self, model, masks, seed):
        pass

    def final(self, model, masks, seed):
        self.lost = max(0.0, 1.0 - self.evaluate(model) - self.gives_back)
        self.base = self.kept(model)
        self.finals.append((self.base, seed))


STAGE_COLS = ["step", "layer", "detail", "accepted", "energy_after_uj", "val_acc_after"]   # of history


def _staged(model, tmp_path, stages, gives_back=1.0, stub=None, **kw):
    stub = stub or _RecoveringTask(model, gives_back)
    pruner = EnergyAwarePruner(copy.deepcopy(model), make_config(),
                               torch.randn(64, 64, generator=torch.Generator().manual_seed(0)),
                               evaluate=stub.evaluate, finetune=stub.finetune, final_finetune=stub.final,
                               granularity="channel", energy_target=0.05, max_acc_drop=0.3,
                               max_steps=20, stages=stages, out_dir=tmp_path, **kw)
    return pruner, stub


@pytest.fixture(scope="module")
def staged_runs(tmp_path_factory):
    """The same model pruned in one stage and in up to three: (model, out dir, stub, result)
    of each."""
    model, d = mlp(), tmp_path_factory.mktemp("staged")
    runs = {}
    for stages in (1, 3):
        pruner, stub = _staged(model, d / str(stages), stages)
        runs[stages] = (model, d / str(stages), stub, pruner.run())
    return runs


def test_a_later_stage_goes_on_from_the_final_finetune_with_the_budget_it_freed(staged_runs, tmp_path):
    model, _, stub1, one = staged_runs[1]
    *_, stub2, two = staged_runs[3]
    assert len(stub1.finals) == 1 and len(stub2.finals) == 2       # stage 3 kept nothing: no third
    first = two.summary["final_finetunes"][0]["after_step"]
    assert two.history[STAGE_COLS].head(first).equals(one.history[STAGE_COLS])  # stage 1 is the one-stage run
    later = two.history.iloc[first:]
    assert later["accepted"].any()
    assert (later.loc[later["accepted"], "val_acc_after"] >= 1 - 0.3).all()
    assert two.summary["energy_after_uj"] < one.summary["energy_after_uj"]
    assert two.summary["stages"] == 3 and stub2.finals[0][1] != stub2.finals[1][1]
    assert f"stage 2: final fine-tune after step {len(two.history)}" in stop_line(two.summary)
    assert "stage" not in stop_line(one.summary)
    assert two.model[1].out_features < one.model[1].out_features

    class Stop(Exception):
        pass

    def kill_in_stage_two(step, row):
        if step == first + 1:
            raise Stop

    cut, _ = _staged(model, tmp_path / "cut", 3, on_step=kill_in_stage_two)
    with pytest.raises(Stop):
        cut.run()
    resumed, stub3 = _staged(model, tmp_path / "cut", 3, resume=True)
    stub3.base = stub2.finals[0][0]                 # the stub's own state as the cut run left it
    resumed = resumed.run()
    assert resumed.history[STAGE_COLS].equals(two.history[STAGE_COLS])
    assert resumed.summary["final_finetunes"] == two.summary["final_finetunes"]
    with pytest.raises(JoulesimError, match="stages 0"):
        _staged(model, tmp_path / "zero", 0)


def test_a_later_stage_keeps_ruled_out_the_steps_that_cost_more_than_its_whole_budget(tmp_path):
    # The final fine-tune wins back only 0.05: a stage starts with far less than the
    # 0.3 budget, so the steps undone for costing more than that should stay ruled out.
    res, _ = _staged(mlp(), tmp_path, 4, gives_back=0.05)
    res = res.run()
    finals = res.summary["final_finetunes"]
    assert len(finals) >= 3
    start = {f["after_step"] + 1: f["val_acc_after"] - (1 - 0.3) for f in finals}   # step -> budget
    undone, budgets, prev, reopened_and_taken = [], [], 1.0, 0
    for row in res.history.itertuples():
        if row.step in start:
            budgets.append(start[row.step])
            prev = start[row.step] + (1 - 0.3)
        wide, narrow = (int(n) for n in row.detail.split()[0].split("->"))
        amount, cost = (wide - narrow) / wide, prev - row.val_acc_after
        for u in undone:            # ruled out if it cost more than every budget since it was undone
            if budgets[u["stage"]:] and all(u["cost"] > b for b in budgets[u["stage"]:]):
                assert not (row.layer == u["layer"] and amount >= u["amount"] - 1e-9), (row, u)
        if row.accepted:
            prev = row.val_acc_after
            reopened_and_taken += any(u["detail"] == row.detail and u["stage"] < len(budgets)
                                      for u in undone)
        else:
            undone.append({"stage": len(budgets), "layer": row.layer, "amount": amount,
                           "cost": cost, "detail": row.detail})
    assert any(u["cost"] > max(budgets) for u in undone)        # the rule had something to rule out
    assert reopened_and_taken                                    # and a cheap undone step came back


def test_a_finished_run_resumed_with_more_stages_goes_on_as_an_uninterrupted_one(staged_runs, tmp_path):
    model, done, stub, one = staged_runs[1]
    out, stub = tmp_path / "more", copy.deepcopy(stub)      # the one-stage run, continued in a copy
    shutil.copytree(done, out)
    fresh = staged_runs[3][3]
    assert len(fresh.history) > len(one.history)        # the later stages took steps
    with pytest.raises(JoulesimError, match="that run used seed 0, this one 1"):
        _staged(model, out, 3, stub=stub, resume=True, seed=1)[0].run()
    more = _staged(model, out, 3, stub=stub, resume=True)[0].run()
    assert more.history[STAGE_COLS].equals(fresh.history[STAGE_COLS])
    for key in ("energy_after_uj", "val_acc_after", "stages", "final_finetunes", "stop_reason"):
        assert more.summary[key] == fresh.summary[key], key
    assert json.loads((out / "run.json").read_text())["stages"] == 3
    with pytest.raises(JoulesimError, match="already reached stage 3"):
        _staged(model, out, 2, stub=stub, resume=True)[0].run()


def test_closing_finetunes_run_once_on_the_finished_model_and_a_resume_adds_only_the_missing(tmp_path):
    model = mlp()
    closed, stub = _staged(model, tmp_path / "closed", 3, gives_back=0.05, closing=2)
    closed = closed.run()
    finals, closing = closed.summary["final_finetunes"], closed.summary["closing_finetunes"]
    last_kept = int(closed.history.loc[closed.history["accepted"], "step"].max())
    assert [c["after_step"] for c in closing] == [last_kept, last_kept]
    assert len(stub.finals) == len(finals) + 2                  # each closing one is a final fine-tune
    assert len({seed for _, seed in stub.finals}) == len(stub.finals)
    assert closing[0]["val_acc_before"] == finals[-1]["val_acc_after"]
    assert closing[0]["val_acc_after"] == closing[1]["val_acc_before"]
    assert closed.summary["val_acc_after"] == closing[1]["val_acc_after"] == stub.evaluate(closed.model)
    assert closing[1]["val_acc_after"] > finals[-1]["val_acc_after"]       # the stub gives some back
    assert f"closing fine-tune after step {last_kept}" in stop_line(closed.summary)
    # a run without them, resumed asking for them, gets them and ends where `closed` did
    out = tmp_path / "open"
    plain, stub2 = _staged(model, out, 3, gives_back=0.05)
    plain = plain.run()
    assert plain.summary["closing_finetunes"] == [] and len(stub2.finals) == len(finals)
    for _ in range(2):                                          # the second resume adds none
        resumed = _staged(model, out, 3, stub=stub2, resume=True, closing=2)[0].run()
        assert resumed.summary["closing_finetunes"] == closing
        assert len(stub2.finals) == len(stub.finals)
    assert resumed.history[STAGE_COLS].equals(closed.history[STAGE_COLS])
    assert resumed.summary["val_acc_after"] == closed.summary["val_acc_after"]


def test_baselines_run_with_the_same_budget(dense_mlp, task):
    from pruning.baselines import global_magnitude, uniform_channel
    for fn, ladder in ((global_magnitude, (0.5, 0.8)), (uniform_channel, (0.25, 0.5))):
        res = fn(dense_mlp, make_config(), task.val_x[:64], evaluate=task.evaluate,
                 finetune=task.finetune, final_finetune=task.final_finetune, max_acc_drop=1.0,
                 ladder=ladder)
        assert len(res.history) == 2 and res.summary["finetune_calls"] == 3   # 2 rungs + final
        assert res.summary["val_acc_before_final_finetune"] is not None
        assert res.summary["energy_after_uj"] <= res.summary["energy_before_uj"]
    assert res.model[1].out_features == 16          # uniform channel: half of 32 removed


# ------------------------------------------------------------------ CLI and bad input
@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("prune_cli")
    t = synthetic_task(n=600)
    np.savez(d / "data.npz", x=torch.cat([t.train_x, t.val_x]).numpy(), y=torch.cat([t.train_y, t.val_y]).numpy(),
             x_test=t.test_x.numpy(), y_test=t.test_y.numpy())
    (d / "models.py").write_text(
        "import torch.nn as nn, torch\n"
        "def mlp():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))\n"
        "def other():\n    torch.manual_seed(1)\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))\n"
        "def no_mac():\n    return nn.Sequential(nn.Flatten(), nn.ReLU())\n")
    for name, sparsity in (("a", {"structured": "2:4"}), ("b", {})):
        cfg = copy.deepcopy(BASE_CONFIG)
        cfg["name"] = f"cfg_{name}"
        cfg["sparsity"] = sparsity
        (d / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    return d


def _prune_cli(d, *extra, model="mlp", hw="a"):
    return run_cli("prune", f"{d}/models.py:{model}", "--hw", d / f"{hw}.yaml", "--data", d / "data.npz",
                   "--max-steps", "1", "--finetune-epochs", "0.1", "--max-acc-drop", "1",
                   "--granularity", MASK_GRANULARITIES, *extra)


def test_cli_prune_writes_results_and_resume_checks_identity(cli_files):
    out = cli_files / "run"
    r = _prune_cli(cli_files, "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    assert "pruning result" in r.output and (out / "model.pt").is_file()
    assert json.loads((out / "summary.json").read_text())["energy_reduction_x"] > 1
    assert _prune_cli(cli_files, "--out", out, "--resume").exit_code == 0
    line = one_line_error(_prune_cli(cli_files, "--out", out, "--resume", model="other"))
    assert "different model" in line
    line = one_line_error(_prune_cli(cli_files, "--out", out, "--resume", hw="b"))
    assert "cfg_a" in line and "cfg_b" in line


@pytest.mark.parametrize("args, needle", [
    (("--energy-target", "0"), "(0, 1]"),
    (("--energy-target", "1.5"), "(0, 1]"),
    (("--max-acc-drop", "-0.1"), ">= 0"),
    (("--granularity", "rows"), "allowed"),
])
def test_cli_prune_bad_numbers(cli_files, args, needle):
    assert needle in one_line_error(_prune_cli(cli_files, *args))


def test_cli_prune_bad_inputs(cli_files, tmp_path):
    line = one_line_error(run_cli("prune", "fashion_cnn", "--hw", cli_files / "a.yaml",
                                  "--data-dir", tmp_path))
    assert "Fashion-MNIST" in line
    assert "no prunable layer" in one_line_error(_prune_cli(cli_files, model="no_mac"))
    assert "no checkpoint" in one_line_error(_prune_cli(cli_files, "--out", tmp_path / "none", "--resume"))
    assert "no such file" in one_line_error(run_cli("prune", "fashion_cnn", "--hw", cli_files / "a.yaml",
                                                    "--data", tmp_path / "missing.npz"))
