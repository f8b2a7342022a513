"""Design-space sweeps: one model on every point of a grid of config changes.

`sweep(model, base, grid)` expands the grid (dotted keys address any field of
the config, e.g. ``{"array.rows": [8, 16, 32], "memory.dram.kind": ["lpddr4",
"hbm2"]}``), validates every point's config before anything runs (an unknown
key or a value the schema rejects is one `JoulesimError`), evaluates the
points in parallel and returns a `SweepResult` whose table has one row per
point: the point's key, every swept value, the totals and the energy by
component, and whether the point is on the energy-latency Pareto front.

The model's real tensors are captured once (`network.Workload`) in the calling
process and shipped once to each worker; each point repeats only the
hardware-dependent work (lowering per operand format, then the array and
memory simulation).

Executors (see docs/executors.md):
- ``local`` (default): a `concurrent.futures.ProcessPoolExecutor` of `jobs`
  spawned processes; the pickled Workload is handed to each by the pool
  initializer. ``jobs=1`` runs in this process.
- ``dask``: Dask distributed: a `LocalCluster` of `jobs` single-threaded
  worker processes, or the scheduler at ``scheduler`` (address); the Workload is
  scattered (broadcast) once to every worker.

Output (``out_dir``): sweep.parquet and sweep.csv (the table), pareto.png
(energy vs latency, front highlighted), sweep_points.jsonl (one line per
finished point, appended as points finish: what ``resume`` reads back after an
interruption) and sweep_meta.json (model fingerprint, base config, mode; a
resume with different ones is refused).

Area is not modeled: the config schema has no area field, so the table's
``area_mm2`` column is empty and ``area_note`` says so.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import pickle
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd
import yaml

from simulator.report import progress_bar
from simulator.comparison import METRIC_COLUMNS, design_metrics, resolve_workload, workload_fingerprint
from simulator.errors import JoulesimError

__all__ = ["EXECUTORS", "SweepPoint", "SweepResult", "parse_grid", "grid_points", "point_key",
           "pareto_front", "sweep", "read_sweep", "default_jobs", "print_sweep", "points_of"]

EXECUTORS = ("local", "dask")
TABLE_PARQUET = "sweep.parquet"
TABLE_CSV = "sweep.csv"
JOURNAL = "sweep_points.jsonl"
META = "sweep_meta.json"
PLOT = "pareto.png"
AREA_NOTE = "not modeled: the config gives no area"


def default_jobs() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------- the grid
def _current(data: Mapping, key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _parse_value(raw: str, current: Any) -> Any:
    """One grid value: text for string fields (so 'none' or '2:4' stay as written), else YAML
    (ints, floats, bools, null come out typed; '1e3' is a number too)."""
    text = raw.strip()
    if isinstance(current, str):
        return text
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(v, str):
        try:
            return float(v)   # '1e3': YAML 1.1 wants a dot in an exponent number
        except ValueError:
            return v
    return v


def parse_grid(items, base=None) -> dict[str, list]:
    """Grid items -> {dotted key: [values]}.

    items: strings ``"array.rows=8,16,32"`` (a key may be given once; repeated values are
    dropped), or a mapping {key: list of values or one value}. String values are parsed with
    YAML unless the field is a string in `base` (a HardwareConfig)."""
    data = base.model_dump(mode="python") if base is not None else {}
    grid: dict[str, list] = {}
    if isinstance(items, Mapping):
        for key, vals in items.items():
            key = str(key).strip()
            vals = list(vals) if isinstance(vals, (list, tuple)) else [vals]
            if not key:
                raise JoulesimError("grid: empty key")
            if not vals:
                raise JoulesimError(f"grid {key}: no values")
            grid[key] = _dedupe(vals)
        return grid
    for item in items:
        item = str(item)
        key, sep, rest = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise JoulesimError(f"grid item {item!r}: expected KEY=V1,V2,... (e.g. array.rows=8,16,32)")
        raws = [r for r in rest.split(",")]
        if not rest.strip() or any(not r.strip() for r in raws):
            raise JoulesimError(f"grid item {item!r}: empty value (expected KEY=V1,V2,...)")
        if key in grid:
            raise JoulesimError(f"grid key {key} given twice; give all its values in one item")
        cur = _current(data, key)
        grid[key] = _dedupe([_parse_value(r, cur) for r in raws])
    if not grid:
        raise JoulesimError("grid: give at least one KEY=V1,V2,... item")
    return grid


def _dedupe(vals: list) -> list:
    out, seen = [], set()
    for v in vals:
        k = json.dumps(v, sort_keys=True, default=str)
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


def point_key(values: Mapping[str, Any]) -> str:
    """The stable identity of a grid point: its swept values as canonical JSON."""
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"), default=str)


@dataclass
class SweepPoint:
    index: int
    values: dict
    config: Any  # HardwareConfig

    @property
    def key(self) -> str:
        return point_key(self.values)


def _show(v: Any) -> str:
    """A value as written in YAML."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def grid_points(base, grid: Mapping[str, list]) -> list[SweepPoint]:
    """Every point of the grid (product, keys in the grid's order) with its validated config.
    The first unknown key, or the first point whose config the schema rejects, raises one
    JoulesimError naming the key=value (or the point) at fault; nothing is run."""
    from simulator.config import apply_overrides

    data = base.model_dump(mode="python")
    for key in grid:  # keys first: a clean "unknown field" message
        apply_overrides(base, {key: _current(data, key)}, source=f"grid {key}")
    single_ok: dict[tuple, bool] = {}
    points = []
    keys = list(grid)
    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        values = dict(zip(keys, combo))
        try:
            cfg = apply_overrides(base, values, source=f"grid point {_describe_point(values)}")
        except JoulesimError:
            for k, v in values.items():  # blame a single value when it is bad on its own
                sk = (k, json.dumps(v, default=str))
                if sk not in single_ok:
                    try:
                        apply_overrides(base, {k: v}, source=f"grid {k}={_show(v)}")
                        single_ok[sk] = True
                    except JoulesimError:
                        single_ok[sk] = False
                        raise
            raise
        points.append(SweepPoint(i, values, cfg))
    return points


def _describe_point(values: Mapping) -> str:
    return ", ".join(f"{k}={_show(v)}" for k, v in values.items())


# ----------------------------------------------------------------- Pareto front
def pareto_front(energy, latency) -> np.ndarray:
    """Boolean mask of the points not dominated in (energy, latency), both minimized: a point
    is dominated when another is <= in both and < in one. Equal points are both kept."""
    e = np.asarray(energy, dtype=float)
    lat = np.asarray(latency, dtype=float)
    n = len(e)
    on = np.zeros(n, dtype=bool)
    order = np.lexsort((e, lat))  # by latency, then energy
    best = math.inf  # least energy among points of strictly smaller latency
    i = 0
    while i < n:
        j = i
        while j + 1 < n and lat[order[j + 1]] == lat[order[i]]:
            j += 1
        group = order[i:j + 1]
        gmin = e[group].min()
        for idx in group:
            on[idx] = e[idx] < best and e[idx] <= gmin
        best = min(best, gmin)
        i = j + 1
    return on


# ----------------------------------------------------------------- workers
_WORKER: dict = {}


def _limit_threads() -> None:
    """One compute thread per worker process (the pool provides the parallelism)."""
    if _WORKER.get("threads_limited"):
        return
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:  # noqa: BLE001 - numba may refuse (e.g. threading layer); not fatal
        pass
    import torch

    torch.set_num_threads(1)
    _WORKER["threads_limited"] = True


def _init_worker(payload: bytes, sample_error, seed) -> None:
    """ProcessPoolExecutor initializer: receive the pickled Workload once."""
    _limit_threads()
    _WORKER.update(work=pickle.loads(payload), sample_error=sample_error, seed=seed)


def _evaluate(work, sample_error, seed, key: str, values: dict, cfg) -> dict:
    from simulator.network import simulate_workload

    rep = simulate_workload(work, cfg, sample_error=sample_error, seed=seed)
    return {"point": key, **values, "base_config": cfg.name, **design_metrics(rep)}


def _evaluate_in_pool(key: str, values: dict, cfg) -> dict:
    return _evaluate(_WORKER["work"], _WORKER["sample_error"], _WORKER["seed"], key, values, cfg)


def _evaluate_in_dask(work, sample_error, seed, key: str, values: dict, cfg) -> dict:
    _limit_threads()
    return _evaluate(work, sample_error, seed, key, values, cfg)


def _run_local(work, todo: list[SweepPoint], jobs: int, sample_error, seed) -> Iterator[dict]:
    if jobs == 1 or len(todo) <= 1:
        for p in todo:
            yield _evaluate(work, sample_error, seed, p.key, p.values, p.config)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    payload = pickle.dumps(work, protocol=pickle.HIGHEST_PROTOCOL)  # once, for every worker
    ctx = multiprocessing.get_context("spawn")  # torch/numba state in this process is not fork-safe
    ex = ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx,
                             initializer=_init_worker, initargs=(payload, sample_error, seed))
    try:
        futures = [ex.submit(_evaluate_in_pool, p.key, p.values, p.config) for p in todo]
        for f in as_completed(futures):
            yield f.result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _run_dask(work, todo: list[SweepPoint], jobs: int, scheduler, sample_error, seed) -> Iterator[dict]:
    import logging

    from distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="10s")
        else:
            cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
    except (OSError, TimeoutError) as e:
        if cluster is not None:
            cluster.close()
        where = f"the Dask scheduler at {scheduler}" if scheduler else "a local Dask cluster"
        raise JoulesimError(f"cannot start or reach {where}: {' '.join(str(e).split())}") from None
    try:
        shared = client.scatter(work, broadcast=True, hash=False)  # once per worker
        tag = uuid.uuid4().hex[:8]
        futures = [client.submit(_evaluate_in_dask, shared, sample_error, seed, p.key, p.values,
                                 p.config, key=f"joulesim-point-{tag}-{p.index}", pure=False)
                   for p in todo]
        try:
            for f in as_completed(futures):
                yield f.result()
        finally:
            client.cancel(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ----------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    """`table`: one row per point (see `sweep`); `computed`: points evaluated by this call;
    `reused`: points taken from a previous run's output (resume); `files`: what was written."""

    table: pd.DataFrame
    keys: list
    computed: int = 0
    reused: int = 0
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def front(self) -> pd.DataFrame:
        """The Pareto-optimal rows, by latency."""
        return self.table[self.table["pareto"]].sort_values("latency_us")


def _meta(label, fingerprint, base, sample_error, seed, keys) -> dict:
    return {"model": label, "model_fingerprint": fingerprint, "base_config": base.name,
            "base_config_data": base.model_dump(mode="json"), "sample_error": sample_error,
            "seed": seed, "keys": list(keys)}


def _read_rows(out: Path) -> list[dict]:
    rows: dict[str, dict] = {}
    if (out / TABLE_PARQUET).is_file():
        try:
            df = pd.read_parquet(out / TABLE_PARQUET)
        except Exception as e:  # noqa: BLE001
            raise JoulesimError(f"{out / TABLE_PARQUET}: cannot read ({' '.join(str(e).split())[:150]})") \
                from None
        for r in df.drop(columns=[c for c in ("pareto", "area_mm2", "area_note") if c in df]) \
                .to_dict("records"):
            rows[r["point"]] = r
    if (out / JOURNAL).is_file():
        with open(out / JOURNAL, encoding="utf-8") as fh:
            for line in fh:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by an interruption
                    continue
                if isinstance(r, dict) and "point" in r:
                    rows[r["point"]] = r
    return list(rows.values())


def _check_meta(out: Path, meta: dict) -> None:
    f = out / META
    if not f.is_file():
        return
    try:
        old = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise JoulesimError(f"{f}: unreadable; cannot resume (use another output directory)") from None
    for k, what in (("model_fingerprint", "model or inputs"), ("base_config_data", "base config"),
                    ("sample_error", "sample error"), ("seed", "seed")):
        if old.get(k) != meta[k]:
            raise JoulesimError(f"cannot resume the sweep in {out}: it was made with another {what}; "
                                "use another output directory or drop --resume")
    if sorted(old.get("keys", [])) != sorted(meta["keys"]):
        raise JoulesimError(f"cannot resume the sweep in {out}: it swept {', '.join(old.get('keys', []))}; "
                            f"this one sweeps {', '.join(meta['keys'])}")


def sweep(model, base, grid, *, inputs=None, jobs: int | None = None, executor: str = "local",
          scheduler: str | None = None, out_dir=None, resume: bool = False,
          sample_error: float | None = None, seed: int = 0, progress: bool = False,
          label: str | None = None) -> SweepResult:
    """Evaluate `model` on every point of `grid` applied to the `base` config.

    model / inputs / label: as in `compare.compare` (spec, nn.Module or Workload; tensor, shape
    or None; the model's name). Call it under `if __name__ == "__main__":` in a script: the
    worker processes are spawned, and they import the main module.
    base: a config path or HardwareConfig. grid: {dotted key: [values]} or items
    "key=v1,v2,..." (see `parse_grid`). jobs: worker processes (default: the CPUs available).
    executor: "local" (process pool) or "dask" (Dask distributed; `scheduler` = address of a
    running scheduler, else a LocalCluster of `jobs` workers). out_dir: write the table
    (Parquet, CSV), the Pareto plot, the journal and the meta file there. resume: keep the
    points already in out_dir and compute only the missing ones.

    The table (`SweepResult.table`), one row per point in grid order: point (the key),
    each swept key (its value), base_config (its name), METRIC_COLUMNS of `compare.design_metrics`
    (energy_uj_per_inference, mac_uj ... leakage_uj, latency_cycles, latency_us,
    edp_uj_us, utilization, dram_bytes_per_inference, inferences_per_joule, ...), pareto
    (on the energy-latency front), area_mm2 (empty: not modeled) and area_note."""
    from simulator.config import HardwareConfig, load_config

    if executor not in EXECUTORS:
        raise JoulesimError(f"executor {executor!r}: allowed: {', '.join(EXECUTORS)}")
    jobs = default_jobs() if jobs is None else int(jobs)
    if jobs < 1:
        raise JoulesimError(f"jobs = {jobs}: must be >= 1")
    if resume and out_dir is None:
        raise JoulesimError("resume needs an output directory (--out)")
    if sample_error is not None and not sample_error > 0:
        raise JoulesimError(f"sample error {sample_error}: must be > 0")
    base_cfg = base if isinstance(base, HardwareConfig) else load_config(base)
    grid = parse_grid(grid, base_cfg)
    points = grid_points(base_cfg, grid)  # every point valid, or one error: nothing has run yet
    keys = list(grid)

    work, label, _ = resolve_workload(model, inputs, seed, label)
    out = Path(out_dir) if out_dir is not None else None
    done: dict[str, dict] = {}
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise JoulesimError(f"--out {out_dir}: cannot create ({e.strerror})") from None
        meta = _meta(label, workload_fingerprint(work), base_cfg, sample_error, seed, keys)
        if resume:
            _check_meta(out, meta)
            done = {r["point"]: r for r in _read_rows(out)}
        else:
            for name in (JOURNAL, TABLE_PARQUET, TABLE_CSV, PLOT):
                (out / name).unlink(missing_ok=True)
        from simulator.report import atomic_write

        atomic_write(out / META, lambda p: p.write_text(json.dumps(meta, indent=1), encoding="utf-8"))

    todo = [p for p in points if p.key not in done]
    reused = len(points) - len(todo)
    rows = dict(done)
    journal = _open_journal(out / JOURNAL) if out is not None else None
    try:
        if not todo:
            runner = iter(())
        elif executor == "local":
            runner = _run_local(work, todo, jobs, sample_error, seed)
        else:
            runner = _run_dask(work, todo, jobs, scheduler, sample_error, seed)
        with progress_bar(progress and bool(todo), eta=True) as bar:
            task = (bar.add_task(f"sweep ({executor}, {jobs} job{'s' if jobs > 1 else ''})",
                                 total=len(todo)) if bar else None)
            for row in runner:
                rows[row["point"]] = row
                if journal is not None:
                    journal.write(json.dumps(row, default=_json_default) + "\n")
                    journal.flush()
                if bar:
                    bar.advance(task)
    finally:
        if journal is not None:
            journal.close()

    table = _table(points, rows, keys)
    result = SweepResult(table, keys, computed=len(todo), reused=reused,
                         notes=[f"area: {AREA_NOTE}"])
    if out is not None:
        result.files = _write(result, out)
    return result


def _open_journal(path: Path):
    """The finished-points file, for appending; a last line cut short by an interruption is
    ended first, so that it stays one unreadable line (skipped) and the next line is whole."""
    cut = False
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            cut = fh.read(1) != b"\n"
    fh = open(path, "a", encoding="utf-8")
    if cut:
        fh.write("\n")
    return fh


def _json_default(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return str(v)


def _table(points: list[SweepPoint], rows: Mapping[str, dict], keys: list) -> pd.DataFrame:
    order = [p.key for p in points]
    extra = [k for k in rows if k not in set(order)]  # from a previous run's wider grid
    records = [rows[k] for k in order + extra]
    cols = ["point"] + keys + ["base_config"] + METRIC_COLUMNS
    df = pd.DataFrame(records)
    for c in cols:
        if c not in df:
            df[c] = None
    df = df[cols].reset_index(drop=True)
    df["pareto"] = pareto_front(df["energy_uj_per_inference"], df["latency_us"]) if len(df) else []
    df["area_mm2"] = np.nan
    df["area_note"] = AREA_NOTE
    return df


def read_sweep(out_dir) -> pd.DataFrame:
    """The table of a finished sweep (sweep.parquet in out_dir)."""
    return pd.read_parquet(Path(out_dir) / TABLE_PARQUET)


def _write(result: SweepResult, out: Path) -> list[Path]:
    from simulator.report import atomic_write

    table = result.table
    atomic_write(out / TABLE_PARQUET, lambda p: table.to_parquet(p, index=False))
    atomic_write(out / TABLE_CSV, lambda p: table.to_csv(p, index=False))
    atomic_write(out / PLOT, lambda p: _plot_pareto(result, p))
    return [out / TABLE_PARQUET, out / TABLE_CSV, out / PLOT]


def _short(values: Mapping) -> str:
    return "/".join(_show(v) for v in values.values())


def _plot_pareto(result: SweepResult, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result.table
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    rest = t[~t["pareto"]]
    front = result.front
    ax.scatter(rest["latency_us"], rest["energy_uj_per_inference"], s=14, color="0.6",
               label=f"design points ({len(t)})")
    ax.step(front["latency_us"], front["energy_uj_per_inference"], where="post", color="C3", lw=1)
    ax.scatter(front["latency_us"], front["energy_uj_per_inference"], s=30, color="C3",
               label=f"Pareto front ({len(front)})", zorder=3)
    if len(front) <= 15:
        for _, r in front.iterrows():
            ax.annotate(_short({k: r[k] for k in result.keys}),
                        (r["latency_us"], r["energy_uj_per_inference"]), fontsize=6,
                        xytext=(4, 3), textcoords="offset points")
    lat, en = t["latency_us"].astype(float), t["energy_uj_per_inference"].astype(float)
    if len(t) and lat.min() > 0 and lat.max() / lat.min() > 20:
        ax.set_xscale("log")
    if len(t) and en.min() > 0 and en.max() / en.min() > 20:
        ax.set_yscale("log")
    ax.set_xlabel("latency per forward pass (µs)")
    ax.set_ylabel("energy per inference (µJ)")
    ax.set_title("energy-latency design space" + (f"\nlabels: {' / '.join(result.keys)}"
                                                  if len(front) <= 15 else ""), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def points_of(items: Iterable[str], base) -> list[SweepPoint]:
    """parse_grid + grid_points: the validated points of grid items (for checks and dry runs)."""
    return grid_points(base, parse_grid(items, base))


def print_sweep(result: SweepResult, console=None, out_dir=None) -> None:
    """The Pareto-optimal points (terminal table) and a one-line summary of the sweep."""
    from rich.table import Table

    from simulator.report import _console

    console = console or _console(160)
    t = result.table
    front = result.front
    tab = Table(title=f"energy-latency Pareto front: {len(front)} of {len(t)} points")
    for k in result.keys:
        tab.add_column(k)
    for head in ("energy µJ/inf", "latency µs", "cycles", "EDP µJ·µs", "util %", "DRAM B/inf"):
        tab.add_column(head, justify="right")
    for _, r in front.iterrows():
        tab.add_row(*[_show(r[k]) for k in result.keys],
                    f"{r['energy_uj_per_inference']:.4f}", f"{r['latency_us']:,.2f}",
                    f"{int(r['latency_cycles']):,}", f"{r['edp_uj_us']:,.2f}",
                    f"{100 * r['utilization']:.1f}", f"{r['dram_bytes_per_inference']:,.0f}")
    console.print(tab)
    where = f" from {out_dir}" if out_dir is not None else ""
    console.print(f"{len(t)} points: {result.computed} computed, {result.reused} already in the "
                  f"output{where}; mode {', '.join(map(str, dict.fromkeys(t['mode'])))}")
    for note in result.notes:
        console.print(note)
