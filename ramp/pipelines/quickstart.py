"""`ramp quickstart` (`make quickstart`): the whole RAMP loop on one machine, start to finish.

Local Ray (with its dashboard), the store under ./ramp-data, MLflow in ./ramp-data/mlflow.db, tiny
models from random init, easy MetaWorld tasks at 64 px. Scripted-expert demonstrations are the
base data; round 0 is stage 1 -> label -> stage 2 and puts the first policy behind a Ray Serve
endpoint; rounds 1..N collect with the simulated human correcting, retrain the world model and the
policy together, gate, and redeploy. Re-running it resumes (finished rounds are skipped). The
closing table shows the numbers as they came out, good or bad.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="quickstart", help="default: the built-in quickstart")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--rounds", type=int, default=2, help="continual rounds after round 0 (2)")
    p.add_argument(
        "--report-episodes",
        type=int,
        default=20,
        help="closing comparison: episodes per task for round 0's policy and the final one (20;"
        " 60 pairs resolve a paired difference of about +0.15 at 95%)",
    )
    p.add_argument(
        "--report-seed",
        type=int,
        default=3_000_000,
        help="first seed of the closing comparison, never the gate's seeds (3000000)",
    )
    p.add_argument(
        "--keep-serving",
        action="store_true",
        help="stay up at the end (endpoint + Ray dashboard) until Ctrl-C",
    )


def _demos(cfg: Any, say: Any) -> None:
    from ramp.pipelines.demos import collect_demos
    from ramp.platform.episodes import EpisodeStore

    store = EpisodeStore.from_config(cfg)
    have = store.episodes(round=0, source=cfg.envs.demos.source)
    want = cfg.envs.demos.episodes * len(cfg.envs.env.task_list)
    if len(have) >= want:
        say(f"base data: {len(have)} demonstrations already in {cfg.store.root}")
        return
    say(f"base data: {want} scripted-expert demonstrations ({', '.join(cfg.envs.env.task_list)})")
    last = [0.0]

    def progress(message: str) -> None:
        if time.monotonic() - last[0] > 5:
            last[0] = time.monotonic()
            say(f"  {message}")

    report = collect_demos(cfg.envs.env, cfg.envs.demos, cfg.store.root, cfg, progress)
    say(f"  {sum(t.kept for t in report.tasks)} episodes in {report.seconds:.0f} s")


def _probe_endpoint(cfg: Any) -> str:
    """Ask the served policy for one chunk, as a robot would, from a fresh simulator frame."""
    from ramp.deploy.client.rest import RampClient
    from ramp.platform.envs.registry import make_env

    env = make_env(cfg.envs.env)
    try:
        env.set_task(cfg.envs.env.task_list[0])
        obs = env.reset(seed=123)
        client = RampClient(f"http://{cfg.serve.host}:{cfg.serve.port}", None, fmt="msgpack")
        t0 = time.perf_counter()
        chunk = client.act(
            {
                "embodiment": env.spec.embodiment,
                "images": obs.images,
                "state": obs.state,
                "instruction": obs.instruction,
            }
        )
        ms = (time.perf_counter() - t0) * 1e3
        client.close()
        return f"{chunk.policy_version}: a {len(chunk.actions)}-step chunk in {ms:.0f} ms"
    except Exception as e:  # reported in the table, never hidden
        return f"not answering ({type(e).__name__}: {e})"
    finally:
        env.close()


def closing_table(manifests: list[Any]) -> str:
    head = (
        f"{'round':>5} {'episodes':>8} {'new':>5} {'human%':>6} {'pos.frac':>8} {'tau':>6} "
        f"{'cand.succ':>9} {'prod.succ':>9} {'p':>7} {'gate':>8} {'minutes':>7}  policy"
    )
    rows = [head, "-" * len(head)]
    for m in manifests:
        st = m.stages
        fr = st["freeze"].result
        col = st["collect"].result if "collect" in st else {}
        lab = st["label"].result
        ev = st["evaluate"].result.get("success", {})
        gate = st["promote"].result.get("gate", {})
        human = col.get("intervention_rate")
        minutes = sum(r.wall_s or 0 for r in st.values()) / 60

        def f(x: Any, spec: str) -> str:
            return "-" if x is None else format(x, spec)

        rows.append(
            f"{m.round:>5} {fr.get('episodes', 0):>8} {fr.get('new_episodes', 0):>5} "
            f"{f(None if human is None else 100 * human, '6.1f')} "
            f"{f(lab.get('positive_fraction'), '8.3f')} {f(lab.get('value_kendall_tau'), '6.2f')} "
            f"{f(ev.get('candidate'), '9.2f')} {f(ev.get('production'), '9.2f')} "
            f"{f(gate.get('p_value'), '7.3f')} "
            f"{('promote' if gate.get('promote') else 'keep'):>8} {minutes:>7.1f}  "
            f"{m.versions.production}"
        )
    return "\n".join(rows)


def closing_comparison(
    cfg: Any, manifests: list[Any], episodes: int, seed: int, say: Any
) -> dict[str, Any]:
    """Round 0's policy and the final production policy on the same fresh seeds (never the gate's,
    so a promotion that won on the gate's seeds by luck is not counted twice), each with the
    world model it was promoted with; the paired difference with its 95% interval."""
    from ramp.actors.rollout import evaluate
    from ramp.platform.envs.collect import evaluation_jobs
    from ramp.platform.stats import paired_comparison

    first, last = manifests[0].versions, manifests[-1].versions
    policies = {"round0": first.production, "final": last.production}
    world_models = {"round0": first.production_world_model, "final": last.production_world_model}
    if None in policies.values():
        return {"skipped": "no policy in production"}
    rcfg = cfg.model_copy(deep=True)
    rcfg.envs.evaluation.seed = seed
    rcfg.envs.evaluation.episodes_per_task = episodes
    same = policies["round0"] == policies["final"]
    labels = ["final"] if same else ["round0", "final"]
    say(
        f"closing comparison: {', '.join(policies[x] for x in labels)} on "
        f"{len(evaluation_jobs(rcfg, 'final'))} fresh seeded episodes"
    )
    res = evaluate(
        rcfg,
        round_=manifests[-1].round,
        policies={x: policies[x] for x in labels},
        world_model={x: world_models[x] for x in labels},
    )
    outs = {x: sorted(res.policies[x].outcomes, key=lambda o: (o.task, o.seed)) for x in labels}
    if same:
        outs["round0"] = outs["final"]
    cmp = paired_comparison(
        [o.success for o in outs["final"]], [o.success for o in outs["round0"]], level=0.95
    )
    return {
        "seeds": [seed, seed + episodes - 1],
        "episodes_per_policy": cmp.n,
        "round0": {
            "policy": policies["round0"],
            "success": cmp.production_rate,
            "interval": list(cmp.production_interval),
        },
        "final": {
            "policy": policies["final"],
            "success": cmp.candidate_rate,
            "interval": list(cmp.candidate_interval),
        },
        "difference": cmp.difference,
        "interval": list(cmp.interval),
        "p_value": cmp.p_value,
        "test": cmp.test,
        "interval_method": cmp.interval_method,
        "per_task": {
            t: {
                x: sum(o.success for o in outs[x] if o.task == t)
                / max(1, sum(o.task == t for o in outs[x]))
                for x in ("round0", "final")
            }
            for t in sorted({o.task for o in outs["final"]})
        },
    }


def round_summary(m: Any) -> dict[str, Any]:
    """One row of quickstart-summary.json from a finished round's manifest."""
    from ramp.platform.stats import wilson_interval

    st = m.stages
    gate = st["promote"].result.get("gate", {})
    lab = st["label"].result
    promoted = bool(gate.get("promote"))
    cand, prod = gate.get("candidate_success"), gate.get("production_success")
    # the policy in production after the round: its success with a 95% Wilson interval (the
    # gate's own intervals are at its test level)
    label = "candidate" if promoted or prod is None else "production"
    ev = (st["evaluate"].result.get("policies") or {}).get(label) or {}
    n = int(ev.get("episodes") or 0)
    k = round(float(ev.get("success_rate") or 0.0) * n)
    return {
        "round": m.round,
        "production": m.versions.production,
        "production_success": cand if label == "candidate" else prod,
        "production_interval": list(wilson_interval(k, n, 0.95)) if n else None,
        "interval_level": 0.95,
        "candidate_success": cand,
        "decision": "promote" if promoted else "keep",
        "reason": gate.get("reason"),
        "p_value": gate.get("p_value"),
        "value_tau_heldout": lab.get("value_tau_heldout"),
        "value_tau_time_baseline": lab.get("value_tau_time_baseline"),
        # per task: the held-out tau next to the time-only baseline's on the same split
        "value_tau_per_task": {
            r["task"]: {"heldout": r.get("tau_wm"), "time_baseline": r.get("tau_time")}
            for r in (lab.get("value_report") or {}).get("tasks", [])
        },
        "positive_fraction": lab.get("positive_fraction"),
        "episodes_per_policy": gate.get("n") or n or None,
        "minutes": sum(r.wall_s or 0 for r in st.values()) / 60,
    }


def write_summary(cfg: Any, manifests: list[Any], final: dict[str, Any]) -> str:
    """``<store root>/quickstart-summary.json`` (format_version 1): the closing table as data."""
    import json

    from ramp.platform.episodes import EpisodeStore

    body = {
        "format_version": 1,
        "rounds": [round_summary(m) for m in manifests],
        "final_vs_round0": final,
    }
    fs = EpisodeStore.from_config(cfg).fs
    fs.write_atomic("quickstart-summary.json", (json.dumps(body, indent=1) + "\n").encode())
    return fs.full("quickstart-summary.json")


def run_cli(args: argparse.Namespace) -> int:
    import ray

    from ramp.actors.coordinator import Coordinator
    from ramp.pipelines.round import printer
    from ramp.platform.config import load_config, with_absolute_root
    from ramp.platform.rounds.manifest import load_manifest

    t0 = time.monotonic()
    cfg = with_absolute_root(load_config(args.config, args.set or ()))
    say = printer()
    say(f"ramp quickstart: config {args.config}, store {cfg.store.root}, 1 + {args.rounds} rounds")
    context = ray.init(
        num_cpus=2,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        log_to_driver=False,
        logging_level="WARNING",
        _node_ip_address="127.0.0.1",
    )
    dashboard = getattr(context, "dashboard_url", None)
    if dashboard:
        say(f"Ray dashboard: http://{dashboard}")
    _demos(cfg, say)
    coordinator = Coordinator(cfg, progress=say)
    done = []
    for r in range(args.rounds + 1):
        m = load_manifest(coordinator.fs, r)
        if m is None or m.status != "done":
            m = coordinator.run(round_=r)
        done.append(m)
    final = closing_comparison(cfg, done, args.report_episodes, args.report_seed, say)
    summary = write_summary(cfg, done, final)
    probe = _probe_endpoint(cfg) if cfg.round.deploy != "never" else "not deployed (round.deploy)"
    from ramp.platform.tracking.uri import tracking_uri

    print()
    print(closing_table(done))
    if "difference" in final:
        r0, fin = final["round0"], final["final"]
        lo, hi = final["interval"]
        print(
            f"\nfinal vs round 0 on {final['episodes_per_policy']} fresh paired episodes: "
            f"{fin['success']:.2f} vs {r0['success']:.2f}, difference {final['difference']:+.2f} "
            f"[{lo:+.2f}, {hi:+.2f}] (95%), one-sided McNemar p={final['p_value']:.3g}"
        )
    print()
    print(f"served policy     http://{cfg.serve.host}:{cfg.serve.port}  ({probe})")
    print(f"store             {cfg.store.root}")
    print(f"summary           {summary}")
    mlflow_uri = tracking_uri(cfg.tracking, cfg.store.root)
    print(f"MLflow            {mlflow_uri}  ->  `ramp dashboard --config {args.config}`")
    print(
        f"Ray dashboard     {('http://' + dashboard) if dashboard else '-'}"
        f"{'' if args.keep_serving else '  (gone when this exits; --keep-serving keeps it)'}"
    )
    print(f"total             {(time.monotonic() - t0) / 60:.1f} min")
    sys.stdout.flush()
    if args.keep_serving:
        say("serving until Ctrl-C")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0
