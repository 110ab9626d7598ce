"""A Ray Tune searcher that spends a seed budget where comparisons are still open.

It suggests ``min`` seeds of every variant first, then, as trials finish, one more seed of both
sides of every comparison that ``ablation.design.seed_budget`` finds open, up to ``max``; it ends the
sweep when nothing is open and nothing runs. Being a Tune searcher, it runs wherever Tune runs
(a cluster, with ASHA: a trial the scheduler stops ends its comparisons, and gets no more seeds).

After a driver crash, ``--resume`` rebuilds its state from the trials Tune itself restores (the
experiment state in the run directory), never from a snapshot of its own that could be older or
newer than Tune's: a seed is neither lost nor run twice. Trials carried from earlier sweeps
(``ablation.run.carry``) count as finished from the start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional

from ray.tune.search import Searcher

from ..design.seed_budget import Comparison, cell_key, cells, comparisons, for_study, seeds_wanted, value_of
from ..design.sequential import Plan
from .results import TrialRecord


def _pair(config: dict[str, Any]) -> tuple[str, int]:
    return cell_key(config), int(config.get("seed", 0))


class SeedSearcher(Searcher):
    """Suggests ``{"point": config}`` for the next (variant, seed) a comparison needs."""

    def __init__(
        self,
        points: list[dict[str, Any]],
        plan: Plan,
        epochs: int,
        run_dir: str | Path,
        reference: Optional[dict[str, Any]] = None,
        columns: Iterable[str] = (),
        carried: Iterable[TrialRecord] = (),
    ):
        super().__init__()
        self.columns = tuple(columns)  # keys every suggested point carries (None where a variant has none)
        self.cells = cells(points)
        self.comparisons: list[Comparison] = comparisons(points, reference)
        self.plan, self.epochs, self.run_dir = for_study(plan, self.comparisons), epochs, str(run_dir)
        # (variant, seed) -> value of the trials carried from earlier sweeps (ablation.run.carry)
        self.carried = {_pair(r.config): value_of(r.history[-1] if r.history else {}) for r in carried}
        self.values: dict[tuple[str, int], Optional[float]] = dict(self.carried)  # finished (variant, seed) -> value
        self.live: dict[str, tuple[str, int]] = {}  # trial id -> (variant, seed) suggested, not finished

    def set_search_properties(self, metric: Optional[str], mode: Optional[str], config: dict, **spec: Any) -> bool:
        self._metric, self._mode = metric, mode  # scheduling metric; comparisons use seed_budget.METRICS
        return True

    def _asked(self) -> set[tuple[str, int]]:
        return set(self.values) | set(self.live.values())

    def next_pair(self) -> Optional[tuple[str, int]]:
        """The (variant key, seed) to run next: lowest seed first, in grid order."""
        wanted = seeds_wanted(self.comparisons, self.cells, self.values, self.plan)
        asked = self._asked()
        for seed in range(self.plan.max_seeds):
            for key in self.cells:
                if seed < wanted[key] and (key, seed) not in asked:
                    return key, seed
        return None

    def suggest(self, trial_id: str) -> Optional[dict]:
        pair = self.next_pair()
        if pair is None:
            # Tune's protocol returns FINISHED (a str) here; Searcher.suggest is annotated Optional[Dict].
            return None if self.live else Searcher.FINISHED  # type: ignore[return-value]
        self.live[trial_id] = pair
        return {"point": {**dict.fromkeys(self.columns), **self.cells[pair[0]], "seed": pair[1]}}

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        pair = self.live.pop(trial_id, None)
        if pair is None:
            return
        finished = not error and result is not None and (result.get("epoch") or 0) >= self.epochs
        self.values[pair] = value_of(result) if finished and result is not None else None

    # Tune saves this with its experiment state; the state itself is rebuilt on restore.
    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(
            json.dumps(
                {
                    "finished": [[k, s, v] for (k, s), v in self.values.items()],
                    "live": {t: list(p) for t, p in self.live.items()},
                }
            )
        )

    def restore(self, checkpoint_path: str) -> None:
        self.restore_from_dir(str(Path(checkpoint_path).parent))

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        """Rebuild from the trials of the experiment state Tune restores (in the run directory)."""
        from .results import records_from_run_dir

        self.values, self.live = dict(self.carried), {}
        for record in records_from_run_dir(self.run_dir):
            pair = _pair(record.config)
            if record.status in ("completed", "stopped", "failed"):
                last = record.history[-1] if record.history else {}
                done = record.status == "completed" and (last.get("epoch") or 0) >= self.epochs
                self.values[pair] = value_of(last) if done else None
            else:
                self.live[record.trial_id] = pair
