"""Typer commands ``banditroute replay`` and ``banditroute evaluate``.

The lead registers them in :mod:`banditroute.service.cli`::

    app.command("replay")(replay_command)
    app.command("evaluate")(evaluate_command)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from banditroute.service.cli_common import ConfigOpt, DatabaseUrlOpt, DataDirOpt, settings_from
from banditroute.service.errors import BanditrouteError
from banditroute.service.replay.dataset import ReplayDataset
from banditroute.service.replay.loaders import default_data_root, load_dataset
from banditroute.service.replay.runner import PolicySpec
from banditroute.service.storage.database import open_database

__all__ = ["default_cost_weights", "evaluate_command", "replay_command"]

#: Default lambda grid as fractions of ``1 / (best single model's cost per query)``: a
#: weight ``f / c_best`` means "always using the best single model costs ``f`` quality
#: points per query". The first is the operating point, chosen on validation data
#: (``python benchmarks/defaults.py --stage operating``); the sweep runs to 5, where even
#: the cheap models cost a noticeable share of a quality point, so the curve reaches the
#: pool's cheap end (AIQ integrates from a router's cheapest point).
DEFAULT_COST_FRACTIONS = (0.1, 0.0, 0.025, 0.05, 0.075, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


def default_cost_weights(dataset: ReplayDataset,
                         operating_fraction: float | None = None) -> list[float]:
    """The default lambda grid for ``dataset`` (see :data:`DEFAULT_COST_FRACTIONS`).

    ``operating_fraction``: another fraction of the grid as the operating point (first), e.g.
    0.2 to reproduce results of releases that used it; the sweep is the same set either way.

    Examples
    --------
    >>> ds = ReplayDataset("t", ["a"], ["m"], np.array([[1.0]]), np.array([[0.01]]))
    >>> default_cost_weights(ds)[:3]
    [10.0, 0.0, 2.5]
    >>> default_cost_weights(ds, operating_fraction=0.2)[:3]
    [20.0, 10.0, 0.0]
    """
    fractions = list(DEFAULT_COST_FRACTIONS)
    if operating_fraction is not None:
        if operating_fraction not in fractions:
            raise ValueError(f"operating fraction {operating_fraction!r} is not in the grid "
                             f"{DEFAULT_COST_FRACTIONS}")
        fractions.remove(operating_fraction)
        fractions.insert(0, operating_fraction)
    quality, cost = dataset.mean_quality(), dataset.mean_cost()
    best_cost = float(cost[int(np.lexsort((cost, -quality))[0])])
    scale = 1.0 / best_cost if best_cost > 0 else 1.0
    return [round(f * scale, 6) for f in fractions]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _resolve_root(data_root: Path | None) -> Path | None:
    if data_root is not None:
        return data_root
    return default_data_root()


def replay_command(
    dataset: Annotated[str, typer.Option(
        help="routerbench | routellm-mmlu | routellm-gsm8k | routellm-mtbench | PATH to a "
             "generic .csv/.jsonl file")] = "routerbench",
    split: Annotated[str, typer.Option(help="train | test | all")] = "test",
    policy: Annotated[list[str] | None, typer.Option(
        help="algorithm[:key=value,...], repeatable (linucb, thompson, epsilon_greedy, "
             "river, uniform, fixed)")] = None,
    seeds: Annotated[int, typer.Option(help="number of seeds (0..N-1)", min=1)] = 5,
    cost_weight: Annotated[list[float] | None, typer.Option(
        help="cost weight lambda (USD^-1), repeatable: the first is the operating point, "
             "all form the sweep; default: a grid scaled to the dataset")] = None,
    operating_fraction: Annotated[float | None, typer.Option(
        help="with the default grid: which of its fractions is the operating point "
             f"(default {DEFAULT_COST_FRACTIONS[0]:g}; 0.2 before 2026-12-01)")] = None,
    data_root: Annotated[Path | None, typer.Option(
        help="folder holding routerbench-subset/ and routellm/ (default: "
             "$BANDITROUTE_DATA_ROOT or ../shared/data beside the repository)")] = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="print the report as one JSON object")] = False,
    out: Annotated[Path | None, typer.Option(
        help="write JSON, Markdown and PNG plots into this folder")] = None,
    server: Annotated[str | None, typer.Option(
        help="drive a running server at ADDRESS over gRPC instead of in-process")] = None,
    admin_token: Annotated[str | None, typer.Option(
        help="admin token for registering models/policy/route (gRPC mode; default "
             "$BANDITROUTE_ADMIN_TOKEN)")] = None,
    api_key: Annotated[str | None, typer.Option(help="x-api-key for Router calls")] = None,
    warm_start: Annotated[bool, typer.Option(
        "--warm-start", help="also run warm-started on the train split (reported "
                             "separately)")] = False,
    warm_mode: Annotated[str, typer.Option(help="full | replay")] = "full",
    feature_dim: Annotated[int, typer.Option(help="FeatureExtractor dimension", min=8)] = 64,
    decision_log: Annotated[Path | None, typer.Option(
        help="write the first policy's decisions (seed 0, operating lambda) as JSONL for "
             "`banditroute evaluate --log`")] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="skip PNG plots")] = False,
    budget_per_request: Annotated[float | None, typer.Option(
        help="pace each policy to this mean spend per request (USD) with the service's "
             "budget controller (BudgetPacer) instead of a fixed cost weight; reports spend "
             "against the budget over windows of the pass")] = None,
    pacing_step: Annotated[float, typer.Option(
        help="the pacing controller's initial dual step (with --budget-per-request; it "
             "decays to 0.002 as a live route's does)")] = 0.02,
    task_context: Annotated[bool, typer.Option(
        "--task-context/--no-task-context",
        help="pass each prompt's task label, where the dataset has one, to the policies as "
             "categorical context {\"task\": label}, as a caller that knows the kind of "
             "request would")] = True,
) -> None:
    """Replay a routing dataset through bandit policies and report cost vs quality."""
    if operating_fraction is not None and (cost_weight or budget_per_request is not None):
        raise _fail("--operating-fraction picks a point of the default grid: not with "
                    "--cost-weight or --budget-per-request")
    if budget_per_request is not None:
        try:
            report = _replay_budget(dataset, split, policy or ["linucb"], seeds,
                                    budget_per_request, pacing_step, _resolve_root(data_root),
                                    warm_start, warm_mode, feature_dim, task_context)
        except (ValueError, FileNotFoundError, TypeError) as exc:
            raise _fail(str(exc)) from exc
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "budget.json").write_text(json.dumps(report, indent=2) + "\n")
        if json_output:
            typer.echo(json.dumps(report))
        else:
            typer.echo(_budget_table(report))
        return
    try:
        report = _replay(dataset, split, policy or ["linucb", "thompson", "epsilon_greedy"],
                         seeds, cost_weight, _resolve_root(data_root), server,
                         admin_token or os.environ.get("BANDITROUTE_ADMIN_TOKEN"), api_key,
                         warm_start, warm_mode, feature_dim, decision_log, quiet=json_output,
                         task_context=task_context, operating_fraction=operating_fraction)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        raise _fail(str(exc)) from exc
    from banditroute.service.replay.report import markdown_table, to_json, write_report

    if out is not None:
        write_report(report, out, plots=not no_plots and server is None)
    if json_output:
        typer.echo(to_json(report))
    elif server is None:
        typer.echo(markdown_table(report))


def _load_split(dataset_name: str, split: str, data_root: Path | None,
                what: str = "dataset", hint: str = "") -> ReplayDataset:
    """``split`` of ``dataset_name``; an empty one is refused, naming ``what`` needed it."""
    data = load_dataset(dataset_name, split, data_root)
    if data.n == 0:
        raise ValueError(f"{what}: the {split} split of {dataset_name} is empty{hint}")
    return data


def _warm_history(dataset_name: str, split: str, data_root: Path | None,
                  warm: bool) -> ReplayDataset | None:
    """The train split a warm start fits on (None without ``warm``); refuses ``split='train'``
    and an empty train split."""
    if not warm:
        return None
    if split == "train":
        raise ValueError("split: warm start fits on the train split; evaluate on test")
    return _load_split(dataset_name, "train", data_root, "--warm-start",
                       " (a warm start fits on it: give rows with split \"train\", or leave "
                       "split empty to hash-split the prompts)")


def _replay(dataset_name: str, split: str, policies: list[str], n_seeds: int,
            cost_weights: list[float] | None, data_root: Path | None, server: str | None,
            admin_token: str | None, api_key: str | None, warm: bool, warm_mode: str,
            feature_dim: int, decision_log: Path | None, quiet: bool,
            task_context: bool = True,
            operating_fraction: float | None = None) -> dict[str, Any]:
    from banditroute.service.replay.experiment import ReplayConfig, run_experiment
    from banditroute.service.replay.runner import default_featurizer, run_online

    specs = [PolicySpec.parse(p) for p in policies]
    data = _load_split(dataset_name, split, data_root)
    weights = (list(cost_weights) if cost_weights
               else default_cost_weights(data, operating_fraction))
    seeds = list(range(n_seeds))
    if server is not None:
        return _replay_grpc(server, data, specs, weights[0], seeds, admin_token, api_key,
                            quiet, task_context)
    history = _warm_history(dataset_name, split, data_root, warm)
    featurize = default_featurizer(feature_dim)
    config = ReplayConfig(specs, weights, seeds=seeds, warm_start=warm, warm_mode=warm_mode,
                          task_context=task_context)

    def progress(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr)

    report = run_experiment(data, config, featurize, history, progress=progress)
    if decision_log is not None:
        features = featurize(data.prompts)
        policy = specs[0].build(data.models, features.shape[1], seeds[0])
        run = run_online(policy, data, features, weights[0], seeds[0], task_context)
        contexts = data.categorical_contexts() if task_context else None
        decision_log.parent.mkdir(parents=True, exist_ok=True)
        with decision_log.open("w", encoding="utf-8") as fh:
            for t, i in enumerate(run.order):
                fh.write(json.dumps({
                    "features": features[i].tolist(), "model": data.models[run.choices[t]],
                    "propensity": float(run.propensities[t]), "reward": float(run.reward[t]),
                    "candidates": list(data.models),
                    **({"categorical_context": contexts[i]} if contexts and contexts[i]
                       else {}),
                }) + "\n")
    return report


def _replay_budget(dataset_name: str, split: str, policies: list[str], n_seeds: int,
                   budget: float, step: float, data_root: Path | None, warm: bool,
                   warm_mode: str, feature_dim: int, task_context: bool = True,
                   windows: int = 5) -> dict[str, Any]:
    """Budget-paced passes (:func:`~banditroute.service.replay.runner.run_budgeted`): the
    policy learns quality, the pacer prices each prompt's estimated cost per model
    (:class:`~banditroute.service.replay.cost_estimates.CostEstimates`: the model's mean cost,
    refined by a regression on the features fitted on the train split and on each realised
    cost) and is corrected by the realised cost."""
    from banditroute.learners.pacing import BudgetPacer
    from banditroute.service.replay.cost_estimates import CostEstimates
    from banditroute.service.replay.runner import (
        default_featurizer,
        estimated_costs,
        run_budgeted,
        warm_start,
    )

    BudgetPacer(budget_per_request_usd=budget, step=step)  # validates before any work
    data = _load_split(dataset_name, split, data_root)
    history = _warm_history(dataset_name, split, data_root, warm)
    featurize = default_featurizer(feature_dim)
    features = featurize(data.prompts)
    hist_features = featurize(history.prompts) if history is not None else None
    costs = estimated_costs(history, data)
    results: list[dict[str, Any]] = []
    for text in policies:
        spec = PolicySpec.parse(text)
        rows: list[dict[str, Any]] = []
        for seed in range(n_seeds):
            policy = spec.build(data.models, features.shape[1], seed)
            if history is not None and hist_features is not None:
                warm_start(policy, history, hist_features, 0.0, seed, warm_mode, task_context)
            pacer = BudgetPacer(budget_per_request_usd=budget, step=step)
            estimates = CostEstimates(costs, features.shape[1])
            if history is not None and hist_features is not None:
                estimates.fit(hist_features, history.cost, history.models)
            run = run_budgeted(policy, data, features, pacer, estimates, seed,
                               history=history, history_features=hist_features,
                               task_context=task_context)
            rows.append({"seed": seed, "accuracy": run.accuracy,
                         "cost_per_query": run.cost_per_query,
                         "windows": run.spend_windows(windows), "final_lambda": pacer.lam,
                         "final_cost_weight": pacer.cost_weight(float(data.n)),
                         "paced_share": float(np.mean(run.paced)) if run.paced is not None
                         else 0.0})
        results.append({
            "policy": spec.label,
            "accuracy": float(np.mean([r["accuracy"] for r in rows])),
            "cost_per_query": float(np.mean([r["cost_per_query"] for r in rows])),
            "cost_over_budget": float(np.mean([r["cost_per_query"] for r in rows])) / budget,
            "windows_cost_over_budget": [
                float(np.mean([r["windows"][w] for r in rows])) / budget
                for w in range(windows)],
            "per_seed": rows,
        })
    quality, cost = data.mean_quality(), data.mean_cost()
    return {"dataset": data.name, "split": data.split, "n_prompts": data.n,
            "warm_start": warm, "budget_per_request": budget, "pacing_step": step,
            "seeds": list(range(n_seeds)),
            "single_models": {m: {"accuracy": float(quality[j]),
                                  "cost_per_query": float(cost[j])}
                              for j, m in enumerate(data.models)},
            "results": results}


def _budget_table(report: dict[str, Any]) -> str:
    budget = report["budget_per_request"]
    lines = [f"{report['dataset']} {report['split']} ({report['n_prompts']} prompts), "
             f"budget ${budget:.6f}/request, "
             f"{'warm' if report['warm_start'] else 'cold'} start, "
             f"{len(report['seeds'])} seeds",
             "",
             "| policy | accuracy | cost/query | cost/budget | spend/budget by fifth of the pass |",
             "|---|---|---|---|---|"]
    for r in report["results"]:
        fifths = " ".join(f"{w:.2f}" for w in r["windows_cost_over_budget"])
        lines.append(f"| {r['policy']} | {r['accuracy']:.4f} | {r['cost_per_query']:.6f} | "
                     f"{r['cost_over_budget']:.3f} | {fifths} |")
    return "\n".join(lines)


def _replay_grpc(server: str, data: ReplayDataset, specs: list[PolicySpec], weight: float,
                 seeds: list[int], admin_token: str | None, api_key: str | None,
                 quiet: bool, task_context: bool = True) -> dict[str, Any]:
    from rich.progress import Progress

    from banditroute.service.replay.baselines import baseline_report
    from banditroute.service.replay.grpc_driver import replay_over_grpc
    from banditroute.service.replay.hull import hull_gap, hull_gap_interval, late_hull_gap

    results: list[dict[str, Any]] = []
    passes: dict[str, list[tuple[Any, Any]]] = {spec.label: [] for spec in specs}
    with Progress(disable=quiet, transient=False) as bar:
        for spec in specs:
            for seed in seeds:
                task = bar.add_task(f"{spec.label} seed {seed}", total=data.n)

                def advance(done: int, total: int, task: Any = task) -> None:
                    bar.update(task, completed=done, total=total)

                res = replay_over_grpc(
                    server, data, spec, weight, seed=seed, admin_token=admin_token,
                    api_key=api_key, register=True, progress=advance,
                    task_context=task_context)
                passes[spec.label].append((res.order, res.choices))
                results.append({"policy": spec.label, "seed": seed, "accuracy": res.accuracy,
                                "cost_per_query": res.cost_per_query,
                                "mean_reward": res.mean_reward, "regret": res.regret,
                                "hull_gap": hull_gap(data, res.order, res.choices),
                                "late_hull_gap": late_hull_gap(data, res.order, res.choices),
                                "model_shares": res.shares})
    base = baseline_report(data, weight)
    summary = []
    for spec in specs:
        rows = [r for r in results if r["policy"] == spec.label]
        summary.append({
            "policy": spec.label, "start": "cold", "mode": "grpc",
            "accuracy": float(np.mean([r["accuracy"] for r in rows])),
            "accuracy_std": float(np.std([r["accuracy"] for r in rows])),
            "cost_per_query": float(np.mean([r["cost_per_query"] for r in rows])),
            "cost_per_query_std": float(np.std([r["cost_per_query"] for r in rows])),
            **{f"{key}{suffix}": float(fn([r[key] for r in rows]))
               for key in ("hull_gap", "late_hull_gap")
               for suffix, fn in (("", np.mean), ("_std", np.std))},
            "hull_gap_ci95": list(hull_gap_interval(data, passes[spec.label])),
            "late_hull_gap_ci95": list(hull_gap_interval(data, passes[spec.label], late=True)),
            "per_seed": rows,
        })
    head = summary[0]
    return {
        "dataset": data.name, "split": data.split, "n_prompts": data.n, "server": server,
        "mode": "grpc", "seeds": seeds, "cost_weight": weight,
        "policy": head["policy"], "accuracy": head["accuracy"],
        "cost_per_query": head["cost_per_query"],
        **{k: base[k] for k in ("best_single_model", "best_single_accuracy",
                                "best_single_cost_per_query", "oracle_accuracy",
                                "oracle_cost_per_query")},
        "baselines": base, "results": summary,
    }


def evaluate_command(
    policy: Annotated[str, typer.Option(
        help="candidate policy: algorithm[:key=value,...]")] = "linucb",
    log: Annotated[Path | None, typer.Option(
        help="JSONL replay log instead of the database")] = None,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    route: Annotated[str | None, typer.Option(help="only decisions of this route")] = None,
    tenant: Annotated[str | None, typer.Option(help="only decisions of this tenant")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many decisions", min=1)] = None,
    seed: Annotated[int, typer.Option(help="seed of the candidate policy", min=0)] = 0,
    confidence: Annotated[float, typer.Option(help="confidence level")] = 0.95,
    bootstrap: Annotated[int, typer.Option(
        help="bootstrap resamples (0: normal approximation)", min=0)] = 0,
    feature_dim: Annotated[int, typer.Option(
        help="FeatureExtractor dimension for logs that carry prompts", min=8)] = 64,
    static: Annotated[bool, typer.Option(
        "--static", help="do not let the candidate learn from the log as it goes")] = False,
    json_output: Annotated[bool, typer.Option(
        "--json", help="print the result as one JSON object")] = False,
) -> None:
    """Estimate a candidate policy's value on logged decisions (IPS, SNIPS, DR, replay)."""
    from banditroute.service.replay.offline import (
        evaluate_candidate,
        load_events_from_db,
        load_events_from_file,
    )
    from banditroute.service.replay.report import to_json

    try:
        spec = PolicySpec.parse(policy)
        if log is not None:
            events = load_events_from_file(log, feature_dim)
        else:
            settings = settings_from(config, database_url, data_dir)
            with open_database(settings) as database:
                events = load_events_from_db(database.url, route, tenant, limit)
            if not events:  # a new service's log: nothing to estimate yet, not an error
                _no_events(spec, json_output)
                return
        if limit is not None:
            events = events[:limit]
        result = evaluate_candidate(events, spec, seed=seed, confidence=confidence,
                                    bootstrap=bootstrap, learn=not static)
    except BanditrouteError as exc:
        raise _fail(exc.message) from exc
    except (ValueError, FileNotFoundError, TypeError) as exc:
        raise _fail(str(exc)) from exc
    if json_output:
        typer.echo(to_json(result))
        return
    typer.echo(f"candidate {result['policy']} on {result['events']} logged decisions "
               f"(logging policy mean reward {result['logging_policy_mean_reward']:.4f})")
    for name, est in result["estimates"].items():
        typer.echo(f"  {name:7s} {est['value']:.4f}  [{est['ci_low']:.4f}, {est['ci_high']:.4f}]"
                   f"  supported by {est['supported']} events, ESS {est['ess']:.1f}")


def _no_events(spec: PolicySpec, json_output: bool) -> None:
    from banditroute.service.replay.report import to_json

    if json_output:
        typer.echo(to_json({"policy": spec.label, "algorithm": spec.algorithm,
                            "hyperparameters": dict(spec.hyperparameters), "events": 0,
                            "estimates": {}}))
        return
    typer.echo(f"candidate {spec.label}: no logged decisions with outcomes yet, nothing to "
               "estimate (record outcomes first)")
