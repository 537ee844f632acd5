"""Accuracy from feature rows, with an uncertainty: :class:`AccuracyRegressor`.

A scikit-learn regressor with ``predict(X, return_std=True)``: bagged ridges on the
rank-normalised accuracies by default (chosen by measurement,
benchmarks/accuracy_model_selection.py: as good as a GP at ranking NAS-Bench-Macro, and it
fits on thousands of rows in seconds), or one ridge, extra-trees, a random forest, a GP.
:func:`kendall_tau` is the rank agreement every evaluation of it reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import HwnasError

MODELS = ("extra-trees", "random-forest", "ridge", "ridge-bag", "gp")
DEFAULT_MODEL = "ridge-bag"

__all__ = ["DEFAULT_MODEL", "MODELS", "AccuracyRegressor", "kendall_tau", "out_of_fold"]


# ---- the regressor --------------------------------------------------------------------------------------

def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import kendalltau

    t = kendalltau(np.asarray(a, float), np.asarray(b, float)).statistic
    return float(t) if t == t else 0.0


def out_of_fold(make, X: np.ndarray, y: np.ndarray, folds: int = 5,
                seed: int = 0) -> tuple[np.ndarray, int]:
    """Seeded k-fold out-of-fold predictions of ``y`` by regressors ``make()`` (fit on the other
    folds), and the number of folds (``folds``, at most one row per fold, at least 2)."""
    from sklearn.model_selection import KFold

    X, y = np.asarray(X, float), np.asarray(y, float)
    k = max(2, min(folds, len(y)))
    oof = np.zeros(len(y))
    for tr, te in KFold(k, shuffle=True, random_state=seed).split(X):
        oof[te] = make().fit(X[tr], y[tr]).predict(X[te])
    return oof, k


class AccuracyRegressor(RegressorMixin, BaseEstimator):
    """Accuracy from feature rows with an uncertainty: ``predict(X, return_std=True)``.

    ``model``: ``ridge-bag`` (default: ``n_estimators`` (at most 100) ridges on bootstrap
    samples, the penalty chosen once by leave-one-out on all rows; std = their spread), ``ridge`` (one RidgeCV; std = residual std),
    ``extra-trees`` (std = spread of the trees), ``random-forest`` or ``gp`` (GaussianProcessRegressor, constant x
    dot-product + constant x RBF + white noise; its own std). Features are standardised.

    ``target="rank"`` (default) fits the normal scores of the accuracies' ranks instead of
    the accuracies: a few badly trained networks (NAS-Bench-Macro reaches down to 45 % beside
    a bulk at 88-93 %) then no longer pull a least-squares fit away from ordering the bulk;
    predictions are mapped back to accuracy through the training pairs (interpolated,
    extended linearly beyond them), which keeps their order. ``target="raw"`` fits the
    accuracies (standardised). Seeded by ``random_state`` and deterministic (one thread)."""

    def __init__(self, model: str = DEFAULT_MODEL, n_estimators: int = 300,
                 max_features: float = 0.5, random_state: int = 0, target: str = "rank"):
        self.model = model
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.random_state = random_state
        self.target = target

    def fit(self, X: np.ndarray, y: Sequence[float]) -> AccuracyRegressor:
        import warnings

        from sklearn.preprocessing import StandardScaler

        if self.model not in MODELS:
            raise HwnasError(f"accuracy predictor: unknown model {self.model!r} "
                             f"(known: {', '.join(MODELS)})")
        X = np.asarray(X, float)
        y = np.asarray(y, float)
        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        if self.target not in ("rank", "raw"):
            raise HwnasError(f"accuracy predictor: target must be rank or raw, got {self.target!r}")
        if self.target == "rank":
            from scipy.stats import norm, rankdata

            t = norm.ppf((rankdata(y) - 0.5) / len(y))
            order = np.argsort(t, kind="stable")
            self.z_knots_, self.y_knots_ = t[order], y[order]
            slope = np.polyfit(t, y, 1)[0] if len(set(t)) > 1 else 0.0
            self.y_slope_ = float(max(slope, 0.0))
        else:
            self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std()) or 1.0
            t = (y - self.y_mean_) / self.y_scale_
        rs = self.random_state
        from threadpoolctl import threadpool_limits

        # one BLAS thread: the products are small, and threads on a busy 2-core box cost 10x
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")  # GP bounds reached, small-sample ridge
            if self.model in ("extra-trees", "random-forest"):
                from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

                cls = ExtraTreesRegressor if self.model == "extra-trees" else RandomForestRegressor
                self.estimator_ = cls(n_estimators=self.n_estimators, max_features=self.max_features,
                                      random_state=rs, n_jobs=1).fit(Z, t)
            elif self.model == "ridge":
                from sklearn.linear_model import RidgeCV

                self.estimator_ = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(Z, t)
                self.resid_std_ = float(np.std(t - self.estimator_.predict(Z)))
            elif self.model == "ridge-bag":
                from sklearn.linear_model import Ridge, RidgeCV

                # the penalty by leave-one-out on all rows, once; then plain ridges on
                # bootstrap samples (100 RidgeCV fits would take a minute on 6,561 rows)
                self.alpha_ = float(RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(Z, t).alpha_)
                rng = np.random.default_rng(rs)
                members = []
                for _ in range(max(2, min(self.n_estimators, 100))):
                    idx = rng.integers(0, len(t), len(t))
                    members.append(Ridge(alpha=self.alpha_).fit(Z[idx], t[idx]))
                self.estimator_ = members
            else:
                from sklearn.gaussian_process import GaussianProcessRegressor
                from sklearn.gaussian_process.kernels import (
                    RBF,
                    ConstantKernel,
                    DotProduct,
                    WhiteKernel,
                )

                k = ConstantKernel() * DotProduct() + ConstantKernel() * RBF(3.0) + WhiteKernel()
                self.estimator_ = GaussianProcessRegressor(k, normalize_y=False,
                                                           random_state=rs).fit(Z, t)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray, return_std: bool = False):
        check_is_fitted(self, "estimator_")
        Z = self.scaler_.transform(np.asarray(X, float))
        if self.model in ("extra-trees", "random-forest"):
            per = np.stack([t.predict(Z) for t in self.estimator_.estimators_])
            mean, std = per.mean(0), per.std(0)
        elif self.model == "ridge":
            mean = self.estimator_.predict(Z)
            std = np.full(len(Z), self.resid_std_)
        elif self.model == "ridge-bag":
            per = np.stack([m.predict(Z) for m in self.estimator_])
            mean, std = per.mean(0), per.std(0)
        else:
            mean, std = self.estimator_.predict(Z, return_std=True)
        if self.target == "rank":
            mean, std = self._back(mean), std * self.y_slope_
        else:
            mean, std = mean * self.y_scale_ + self.y_mean_, std * self.y_scale_
        return (mean, std) if return_std else mean

    def _back(self, z: np.ndarray) -> np.ndarray:
        """Normal scores -> accuracy: the training pairs interpolated, linear beyond them."""
        zk, yk, a = self.z_knots_, self.y_knots_, self.y_slope_
        out = np.interp(z, zk, yk)
        lo, hi = z < zk[0], z > zk[-1]
        out[lo] = yk[0] + a * (z[lo] - zk[0])
        out[hi] = yk[-1] + a * (z[hi] - zk[-1])
        return out

