"""The variants of `bench/speech_probe_study.py study`: each is trained on the training speakers of a fold and scored
on its held-out speakers (the benchmark's 3 folds: sorted speakers dealt round-robin), pooled and per corpus.

Per-speaker normalisation is scored three ways: `transductive` (each test speaker's embeddings standardised with
statistics of all of that speaker's clips: an upper bound, not what can run), `causal` (each test clip centred with
the mean of that speaker's *previous* clips only, shrunk towards the training pool's mean with a pseudo-count, in a
random order of the speaker's clips, averaged over 5 orders: what runs for a listener whose clips arrive one by one;
the first clip of a speaker has no history and uses the pool alone).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import numpy as np

Fit = Callable[[np.ndarray, np.ndarray, np.ndarray], Any]  # (x, y, groups) -> classifier with predict_proba


def lr(c: float = 0.1, balanced: bool = False) -> Fit:
    def fit(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if balanced else None)).fit(x, y)

    return fit


def lr_inner_c(grid: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)) -> Fit:
    """C chosen by speaker-grouped 3-fold CV on the training speakers only (log-loss), then refitted."""

    def fit(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GridSearchCV, GroupKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
        gs = GridSearchCV(pipe, {"logisticregression__C": list(grid)}, cv=GroupKFold(3), scoring="neg_log_loss")
        gs.fit(x, y, groups=g)
        fit.chosen.append(gs.best_params_["logisticregression__C"])  # type: ignore[attr-defined]
        return gs.best_estimator_

    fit.chosen = []  # type: ignore[attr-defined]
    return fit


def mlp(seeds: int = 1, hidden: int = 256) -> Fit:
    def fit(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> Any:
        from sklearn.ensemble import VotingClassifier
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        nets = [(f"m{s}", MLPClassifier((hidden,), alpha=1.0, max_iter=300, early_stopping=False, random_state=s)) for s in range(seeds)]
        clf = VotingClassifier(nets, voting="soft") if seeds > 1 else nets[0][1]
        return make_pipeline(StandardScaler(), clf).fit(x, y)

    return fit


class NAP:
    """Nuisance attribute projection (Solomonoff et al. 2005; used for speaker-independent emotion recognition): the
    top-k principal directions of the training speakers' mean embeddings (after standardising) are projected out of
    every embedding, train and test. Needs no clip of the test speaker, so it runs on a listener's first clip. Each
    speaker's mean is the average of its per-emotion means, so a speaker's emotion mix does not move it."""

    def __init__(self, k: int) -> None:
        self.k = k

    def fit(self, x: np.ndarray, y: np.ndarray, g: np.ndarray) -> NAP:
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(x)
        z = self.scaler.transform(x)
        means = np.stack([np.mean([z[(g == s) & (y == c)].mean(0) for c in np.unique(y[g == s])], axis=0) for s in np.unique(g)])
        means -= means.mean(0)
        _, _, vt = np.linalg.svd(means, full_matrices=False)
        self.v = vt[: self.k].T  # (d, k)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = self.scaler.transform(x)
        return z - (z @ self.v) @ self.v.T


def nap_lr(k: int | None, c: float = 0.1, grid: tuple[int, ...] = (0, 1, 2, 4, 6, 8, 10)) -> Fit:
    """NAP with k directions, then standardise + logistic regression; k None: chosen by the log-loss of an inner
    speaker-grouped CV (leave-one-speaker-out over the training speakers)."""

    def one(x: np.ndarray, y: np.ndarray, g: np.ndarray, kk: int) -> Any:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        nap = NAP(kk).fit(x, y, g)
        zz = nap.transform(x)
        sc = StandardScaler().fit(zz)
        clf = LogisticRegression(C=c, max_iter=3000).fit(sc.transform(zz), y)

        class Model:
            classes_ = clf.classes_

            @staticmethod
            def predict_proba(xx: np.ndarray) -> np.ndarray:
                return clf.predict_proba(sc.transform(nap.transform(xx)))

        return Model()

    def fit(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> Any:
        from sklearn.metrics import log_loss

        if k is not None:
            return one(x, y, g, k)
        losses = []
        for kk in grid:
            probs = np.zeros((len(y), len(np.unique(y))))
            for s in np.unique(g):
                te = g == s
                m = one(x[~te], y[~te], g[~te], kk)
                probs[np.ix_(te, m.classes_)] = m.predict_proba(x[te])
            losses.append(log_loss(y, np.clip(probs, 1e-9, 1), labels=np.unique(y)))
        best = grid[int(np.argmin(losses))]
        fit.chosen.append(best)  # type: ignore[attr-defined]
        return one(x, y, g, best)

    fit.chosen = []  # type: ignore[attr-defined]
    return fit


def speaker_standardise(x: np.ndarray, g: np.ndarray, scale: bool = True) -> np.ndarray:
    out = x.copy()
    for s in np.unique(g):
        m = g == s
        out[m] = (x[m] - x[m].mean(0)) / ((x[m].std(0) + 1e-5) if scale else 1.0)
    return out


def causal_centre(x: np.ndarray, g: np.ndarray, pool_mean: np.ndarray, prior: float, rng: np.random.Generator) -> np.ndarray:
    """Each clip minus the shrunk mean of its speaker's previous clips in a random order (the pool mean when none)."""
    out = np.empty_like(x)
    for s in np.unique(g):
        idx = np.flatnonzero(g == s)
        rng.shuffle(idx)
        total = prior * pool_mean
        for n, i in enumerate(idx):
            out[i] = x[i] - total / (n + prior)
            total = total + x[i]
    return out


def run(x: np.ndarray, y: np.ndarray, g: np.ndarray, folds: list[list[str]], fit: Fit, *, xtrain: np.ndarray | None = None,
        aug: list[np.ndarray] | None = None, speaker: str = "", prior: float = 3.0, orders: int = 5) -> np.ndarray:
    """Held-out class probabilities (N, 4) of one variant. `aug`: extra copies of x (same rows) added to training.
    `speaker`: "" (none), "transductive" or "causal" per-speaker centring (training speakers centred on their own mean)."""
    probs = np.zeros((len(y), 4))
    for test_speakers in folds:
        te = np.isin(g, test_speakers)
        tr = ~te
        xt = (xtrain if xtrain is not None else x)[tr]
        yt, gt = y[tr], g[tr]
        if speaker:
            xt = speaker_standardise(xt, gt, scale=False)
        if aug:
            extra = [a[tr] for a in aug]
            if speaker:
                extra = [speaker_standardise(a, gt, scale=False) for a in extra]
            xt, yt, gt = np.concatenate([xt, *extra]), np.tile(yt, len(aug) + 1), np.tile(gt, len(aug) + 1)
        clf = fit(xt, yt, gt)
        if speaker == "transductive":
            p = clf.predict_proba(speaker_standardise(x[te], g[te], scale=False))
        elif speaker == "causal":
            pool = np.zeros(x.shape[1])  # training speakers are centred: their pool mean is 0 ...
            raw_pool = (xtrain if xtrain is not None else x)[tr].mean(0)  # ... the first clip is centred on the raw pool
            rng = np.random.default_rng(0)
            p = np.mean([clf.predict_proba(causal_centre(x[te], g[te], raw_pool, prior, rng)) for _ in range(orders)], axis=0)
            del pool
        else:
            p = clf.predict_proba(x[te])
        full = np.zeros((int(te.sum()), 4))
        full[:, clf.classes_] = p
        probs[te] = full
    return probs


def study(args: argparse.Namespace) -> None:
    from catalog.manifest import corpus_of
    from emotion.speech.train import metrics, speaker_folds

    z = np.load(args.cache)
    y, g = z["labels"], z["groups"]
    folds = speaker_folds(sorted(set(g.tolist())), 3)
    d = {"tiny.en": 384, "base": 512}

    def feat(m: str, layers: tuple[int, ...], kind: str = "ms", aug: str = "orig") -> np.ndarray:
        p = z[f"{m}/{aug}"]
        k = d[m]
        parts = {"ms": slice(0, 2 * k), "ln": slice(2 * k, 4 * k), "s": slice(k, 2 * k)}[kind]
        return np.concatenate([p[:, layer, parts] for layer in layers], axis=1)

    def augs(m: str, layers: tuple[int, ...], kinds: tuple[str, ...] = ("speed0.9", "speed1.1", "noise")) -> list[np.ndarray]:
        return [feat(m, layers, aug=a) for a in kinds]

    t2, b2 = feat("tiny.en", (2,)), feat("base", (2,))
    variants: dict[str, Callable[[], np.ndarray]] = {
        "tiny L2 probe (C 0.1)": lambda: run(t2, y, g, folds, lr()),
        "base L2 probe": lambda: run(b2, y, g, folds, lr()),
        "tiny L1+2+3": lambda: run(feat("tiny.en", (1, 2, 3)), y, g, folds, lr()),
        "tiny L1+2": lambda: run(feat("tiny.en", (1, 2)), y, g, folds, lr()),
        "base L1+2+3": lambda: run(feat("base", (1, 2, 3)), y, g, folds, lr()),
        "base L1+2": lambda: run(feat("base", (1, 2)), y, g, folds, lr()),
        "tiny L2 + base L2": lambda: run(np.c_[t2, b2], y, g, folds, lr()),
        "tiny L2 frame-LN pooling": lambda: run(feat("tiny.en", (2,), "ln"), y, g, folds, lr()),
        "tiny L2 std only (utterance-centred)": lambda: run(feat("tiny.en", (2,), "s"), y, g, folds, lr()),
        "base L2 frame-LN pooling": lambda: run(feat("base", (2,), "ln"), y, g, folds, lr()),
        "tiny L2 balanced": lambda: run(t2, y, g, folds, lr(balanced=True)),
        "tiny L2 inner-CV C": lambda: run(t2, y, g, folds, lr_inner_c()),
        "base L2 inner-CV C": lambda: run(b2, y, g, folds, lr_inner_c()),
        "tiny L2 + speed aug": lambda: run(t2, y, g, folds, lr(), aug=augs("tiny.en", (2,), ("speed0.9", "speed1.1"))),
        "tiny L2 + noise aug": lambda: run(t2, y, g, folds, lr(), aug=augs("tiny.en", (2,), ("noise",))),
        "tiny L2 + speed+noise aug": lambda: run(t2, y, g, folds, lr(), aug=augs("tiny.en", (2,))),
        "base L2 + speed+noise aug": lambda: run(b2, y, g, folds, lr(), aug=augs("base", (2,))),
        "tiny L2 speaker-centred (transductive, upper bound)": lambda: run(t2, y, g, folds, lr(), speaker="transductive"),
        "tiny L2 speaker-centred (causal, prior 3)": lambda: run(t2, y, g, folds, lr(), speaker="causal"),
        "tiny L2 speaker-centred (causal, prior 1)": lambda: run(t2, y, g, folds, lr(), speaker="causal", prior=1.0),
        "base L2 speaker-centred (transductive, upper bound)": lambda: run(b2, y, g, folds, lr(), speaker="transductive"),
        "base L2 speaker-centred (causal, prior 3)": lambda: run(b2, y, g, folds, lr(), speaker="causal"),
        "tiny L2 + clip HSF": lambda: run(np.c_[t2, z["hsf"]], y, g, folds, lr()),
        "tiny L2 + base L2 MLP": lambda: run(np.c_[t2, b2], y, g, folds, mlp()),
        "tiny L2 + base L2 balanced": lambda: run(np.c_[t2, b2], y, g, folds, lr(balanced=True)),
        "tiny L2 + base L2 + speed+noise aug": lambda: run(np.c_[t2, b2], y, g, folds, lr(),
                                                           aug=[np.c_[a, b] for a, b in zip(augs("tiny.en", (2,)), augs("base", (2,)), strict=True)]),
        "tiny L1+2+3 + base L1+2+3": lambda: run(np.c_[feat("tiny.en", (1, 2, 3)), feat("base", (1, 2, 3))], y, g, folds, lr()),
        "tiny L2 + base L2 inner-CV C": lambda: run(np.c_[t2, b2], y, g, folds, lr_inner_c()),
        "tiny L2 MLP": lambda: run(t2, y, g, folds, mlp()),
        "tiny L2 MLP x5 seeds": lambda: run(t2, y, g, folds, mlp(5)),
    }
    for kk in (1, 2, 4, 6, 8, 10):
        variants[f"NAP k={kk} tiny L2 + base L2"] = lambda kk=kk: run(np.c_[t2, b2], y, g, folds, nap_lr(kk))
    nap_auto = nap_lr(None)
    variants["NAP k by inner LOSO tiny L2 + base L2"] = lambda: run(np.c_[t2, b2], y, g, folds, nap_auto)
    variants["NAP k=4 tiny L2"] = lambda: run(t2, y, g, folds, nap_lr(4))
    if len(z["egemaps"]):
        variants["tiny L2 + base L2 + eGeMAPS"] = lambda: run(np.c_[t2, b2, z["egemaps"]], y, g, folds, lr())
        variants["tiny L2 + eGeMAPS"] = lambda: run(np.c_[t2, z["egemaps"]], y, g, folds, lr())
    only = {v.strip() for v in args.only.split(",") if v.strip()}
    corpora = sorted({corpus_of(s) for s in g.tolist()})
    rows = {}
    for name, fn in variants.items():
        if only and not any(o in name for o in only):
            continue
        try:
            probs = fn()
        except KeyError as e:  # extracted with --augments orig: the augmentation rows have no copies to train on
            print(f"{name:55s} skipped ({e})", flush=True)
            continue
        s = metrics(y, probs)
        row = {"accuracy": round(s["accuracy"], 3), "macro_f1": round(s["macro_f1"], 3)}
        for c in corpora:
            idx = np.array([corpus_of(v) == c for v in g.tolist()])
            pc = metrics(y[idx], probs[idx])
            row[c] = [round(pc["accuracy"], 3), round(pc["macro_f1"], 3)]
        rows[name] = row
        print(f"{name:55s} all {row['accuracy']:.3f}/{row['macro_f1']:.3f}  " + "  ".join(f"{c} {row[c][0]:.3f}/{row[c][1]:.3f}" for c in corpora), flush=True)
    print(json.dumps({"protocol": "3-fold speaker-grouped (benchmark folds)", "rows": rows}))


def history(args: argparse.Namespace) -> None:
    """Causal per-speaker centring against the emotion mix of the listener's history: each test clip is centred on
    the shrunk mean (pseudo-count 3 of the training pool) of `h` other clips of its speaker drawn with a mix of
    emotions (`mixed`), all of one random emotion (`one-mood`), all of the clip's own emotion (`same`) or none of it
    (`other`); tiny.en + base layer 2, the benchmark's 3 folds."""
    from emotion.speech.train import metrics, speaker_folds

    z = np.load(args.cache)
    y, g = z["labels"], z["groups"]
    folds = speaker_folds(sorted(set(g.tolist())), 3)
    x = np.c_[z["tiny.en/orig"][:, 2, :768], z["base/orig"][:, 2, :1024]]
    rows = {"none": metrics(y, run(x, y, g, folds, lr()))["accuracy"]}
    for mode in ("mixed", "one-mood", "same", "other"):
        for h in (1, 3, 10):
            rng = np.random.default_rng(0)
            probs = np.zeros((len(y), 4))
            for ts in folds:
                te, tr = np.flatnonzero(np.isin(g, ts)), ~np.isin(g, ts)
                clf = lr()(speaker_standardise(x[tr], g[tr], scale=False), y[tr], g[tr])
                pool = x[tr].mean(0)
                out = np.empty((len(te), x.shape[1]))
                for k, i in enumerate(te):
                    own = te[(g[te] == g[i]) & (te != i)]
                    pick = {"mixed": own, "same": own[y[own] == y[i]], "other": own[y[own] != y[i]],
                            "one-mood": own[y[own] == rng.integers(4)]}[mode]
                    hist = rng.choice(pick, size=min(h, len(pick)), replace=False)
                    out[k] = x[i] - (3.0 * pool + x[hist].sum(0)) / (len(hist) + 3.0)
                full = np.zeros((len(te), 4))
                full[:, clf.classes_] = clf.predict_proba(out)
                probs[te] = full
            rows[f"{mode} h={h}"] = metrics(y, probs)["accuracy"]
            print(f"{mode:9s} h={h:2d} accuracy {rows[f'{mode} h={h}']:.3f}", flush=True)
    print(json.dumps({k: round(v, 3) for k, v in rows.items()}))
