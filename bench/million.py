#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A million models on one machine: bench/README.md ("million.py") says what each step
measures. Not run by CI (it writes about 50 GB and takes about half an hour here).

    MYR_CLI=build/release/myriad .venv/bin/python bench/million.py [--groups N] ...
"""
import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd, label):
    """Run cmd; return (wall seconds, peak RSS bytes, stdout)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{label}: {' '.join(cmd)} failed ({p.returncode}):\n{err.decode()}")
    return wall, ru.ru_maxrss * 1024, out.decode()


def models_digest(store):
    """sha256 over (key, n_rows, n_holdout, metrics, blob) of every current model, in
    key order: equal digests mean the same models."""
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    keys = [r[1] for r in con.execute("PRAGMA table_info(current)")
            if r[1] not in ("key_hash", "model_id", "version", "run_id")]
    cols = ", ".join(f'c."{k}"' for k in keys)
    h = hashlib.sha256()
    n = 0
    for row in con.execute(
            f"SELECT {cols}, m.n_rows, m.n_holdout, m.metrics, b.blob FROM current c "
            f"JOIN models m ON m.model_id = c.model_id "
            f"JOIN blobs b ON b.model_id = c.model_id ORDER BY {cols}"):
        for v in row:
            b = v if isinstance(v, bytes) else str(v).encode()
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
        n += 1
    con.close()
    return h.hexdigest(), n


def remove_store(path):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=1_000_000)
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--skew-groups", type=int, default=100_000,
                    help="groups of the skewed and balanced sets of step (d)")
    ap.add_argument("--memory-limit", default="4G", help="step (c)")
    ap.add_argument("--lookups", type=int, default=10_000)
    ap.add_argument("--workdir", default=os.path.join(ROOT, "build", "bench-million"),
                    help="data, stores and spill files (needs about 50 GB for 1M groups)")
    ap.add_argument("--steps", default="a,b,c,d", help="which of a,b,c,d to run")
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    args = ap.parse_args()
    cli = os.environ.get("MYR_CLI", os.path.join(ROOT, "build", "release", "myriad"))
    loader = os.path.join(os.path.dirname(cli), "load_by_key")
    os.makedirs(args.workdir, exist_ok=True)
    steps = set(args.steps.split(","))
    w = args.workdir
    report = {"groups": args.groups, "rows": args.rows, "features": args.features,
              "cores": os.cpu_count()}

    def gen(path, groups, skew=None):
        if os.path.exists(path):
            return
        cmd = [cli, "gen", "--out", path, "--groups", str(groups), "--rows",
               str(args.rows), "--features", str(args.features), "--quiet"]
        if skew:
            cmd += ["--skew", skew]
        wall, _, _ = run(cmd, "gen")
        print(f"gen {os.path.basename(path)}: {wall:.1f} s, "
              f"{os.path.getsize(path) / 1e9:.2f} GB", flush=True)

    def train(label, data, store, model, params=None, extra=()):
        remove_store(store)
        cmd = [cli, "train", data, "--keys", "app,api", "--label", "y", "--model", model,
               "--store", store, "--json", *extra]
        if params:
            cmd += ["--param", params]
        wall, rss, out = run(cmd, label)
        s = json.loads(out)
        r = {"wall_s": round(wall, 2), "models": s["groups_trained"],
             "models_per_s": round(s["groups_trained"] / wall),
             "peak_rss_gib": round(rss / 2**30, 3),
             "phases_s": {k[8:]: round(s[k], 2) for k in s if k.startswith("seconds_")}}
        if "spill" in s:
            r["spill"] = s["spill"]
        if s["groups_failed"]:
            sys.exit(f"{label}: {s['groups_failed']} groups failed")
        return r

    def lookups(r, store):
        _, _, out = run([loader, store, str(args.lookups)], "load_by_key")
        lk = json.loads(out)
        r["store_gb"] = round(lk["store_bytes"] / 1e9, 2)
        r["store_bytes_per_model"] = lk["bytes_per_model"]
        r["load_by_key_us"] = {k: lk[k] for k in ("p50_us", "p99_us", "max_us")}

    def show(label, r):
        print(f"({label}) {r['wall_s']:.1f} s, {r['models_per_s']:,} models/s, peak RSS "
              f"{r['peak_rss_gib']:.2f} GiB" +
              (f", store {r['store_gb']} GB ({r['store_bytes_per_model']:.0f} B/model), "
               f"load by key p99 {r['load_by_key_us']['p99_us']} us"
               if "store_gb" in r else "") +
              (f", spilled {r['spill']['rows']:,} rows in {r['spill']['loads']} loads"
               if "spill" in r else ""), flush=True)

    data = os.path.join(w, f"million-{args.groups}.arrow")
    if steps & {"a", "b", "c"}:
        gen(data, args.groups)
    if "a" in steps:
        st = os.path.join(w, "a.db")
        r = report["a_linear"] = train("a", data, st, "linear")
        lookups(r, st)
        show("a linear", r)
        if not args.keep:
            remove_store(st)
    digest_b = None
    forest = "n_trees=20,max_depth=8"
    if "b" in steps:
        st = os.path.join(w, "b.db")
        r = report["b_forest"] = train("b", data, st, "forest", forest)
        lookups(r, st)
        show("b forest", r)
        if "c" in steps:
            digest_b = models_digest(st)
        if not args.keep:
            remove_store(st)
    if "c" in steps:
        st = os.path.join(w, "c.db")
        r = report["c_forest_limit"] = train(
            "c", data, st, "forest", forest,
            ["--memory-limit", args.memory_limit, "--spill-dir", w])
        r["memory_limit"] = args.memory_limit
        show(f"c forest --memory-limit {args.memory_limit}", r)
        if digest_b:
            digest_c = models_digest(st)
            r["same_models_as_b"] = digest_c == digest_b
            print(f"    models of (c) == models of (b): {digest_c == digest_b} "
                  f"({digest_c[1]:,} models)", flush=True)
        if not args.keep:
            remove_store(st)
    if "d" in steps:
        bal = os.path.join(w, f"balanced-{args.skew_groups}.arrow")
        skw = os.path.join(w, f"zipf-{args.skew_groups}.arrow")
        gen(bal, args.skew_groups)
        gen(skw, args.skew_groups, "zipf")
        d = report["d_skew"] = {}
        for model, params in (("linear", None), ("forest", forest)):
            walls = {"balanced": [], "zipf": []}
            for _ in range(3):  # interleaved: the machine is noisy
                for name, path in (("balanced", bal), ("zipf", skw)):
                    st = os.path.join(w, "d.db")
                    walls[name].append(train(f"d {model}", path, st, model, params)["wall_s"])
                    remove_store(st)
            med = {k: sorted(v)[1] for k, v in walls.items()}
            d[model] = {"balanced_s": med["balanced"], "zipf_s": med["zipf"],
                        "ratio": round(med["zipf"] / med["balanced"], 3)}
            print(f"(d {model}) balanced {med['balanced']:.2f} s, zipf {med['zipf']:.2f} s, "
                  f"ratio {d[model]['ratio']:.2f} (medians of 3)", flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
