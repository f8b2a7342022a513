"""Energy-aware pruning with the simulator in the loop.

    pruner = pruning.EnergyAwarePruner(model, hw, example_inputs, evaluate=fn, finetune=fn,
                                       energy_target=0.4, max_acc_drop=0.01)
    result = pruner.run()          # result.model, result.report, result.history, result.summary

Baselines on the same simulated hardware: `global_magnitude`, `uniform_channel`.
`prune_classifier(model, hw, task, ...)` runs it all from labelled data
(`load_task`). This package calls the simulator; the simulator never imports
it. Names load lazily, so `joulesim --help` stays fast.
"""
from importlib import import_module

_EXPORTS = {
    "EnergyAwarePruner": "pruning.loop", "PruneResult": "pruning.results",
    "plot_trajectory": "pruning.results", "summary_row": "pruning.results",
    "global_magnitude": "pruning.baselines", "uniform_channel": "pruning.baselines",
    "ClassificationTask": "pruning.tasks", "load_task": "pruning.tasks",
    "FinetuneSettings": "pruning.training", "prune_classifier": "pruning.workflow",
    "GRANULARITIES": "pruning.candidates", "CRITERIA": "pruning.importance",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pruning' has no attribute {name!r}")
