"""The search's study: opened from a run's storage with the settings' sampler and objectives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..trials.storage import make_sampler, open_storage, retry_storage
from .settings import OBJECTIVES, SearchSettings

__all__ = ["open_study"]


def open_study(settings: SearchSettings, run_dir: Path, create: bool = False,
               sampler_seed: int | None = None, storage: Any = None):
    """The study of the run in ``run_dir`` with the settings' sampler (seeded with
    ``sampler_seed``, default ``settings.seed``; ``create``: made when it does not exist, with
    simultaneous creations retried); ``storage``: an already opened :func:`open_storage`.
    HwnasError if it cannot be opened or has other objectives."""
    import optuna

    if storage is None:
        storage = open_storage(settings.storage, run_dir)
    seed = settings.seed if sampler_seed is None else sampler_seed
    sampler = make_sampler(settings.sampler, seed, settings.population_size())
    directions = [OBJECTIVES[o][0] for o in settings.objectives]
    try:
        if create:
            study = retry_storage(lambda: optuna.create_study(
                storage=storage, sampler=sampler, study_name=settings.name,
                directions=directions, load_if_exists=True), f"study {settings.name}")
        else:
            study = optuna.load_study(study_name=settings.name, storage=storage, sampler=sampler)
    except Exception as e:
        if isinstance(e, KeyError) and not create:
            raise HwnasError(f"no study '{settings.name}' in the storage of run "
                             f"'{run_dir.name}'") from None
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise HwnasError(f"storage of run '{run_dir.name}': {type(e).__name__}: {msg}") from None
    if [d.name.lower() for d in study.directions] != directions:
        raise HwnasError(f"study '{settings.name}' in that storage has other objectives "
                         f"({', '.join(d.name.lower() for d in study.directions)})")
    return study
